import { LimitReachedError } from "../core/errors.js";
import { ceilFine, fineCostOfTokens, fineCostOfUsage, priceOf, type ProviderUsage } from "../core/pricing.js";
import type { CommitOptions, CommitResult, MeterApi, PriceTable, ReserveResult } from "../core/types.js";
import { costOf, fineToDecimal } from "./costOf.js";
import { ledgerUsage } from "./ledgerUsage.js";
import type { UpperBound } from "./upperBound.js";
import type { MeteringUnit, Settlement, SettlementPart } from "./types.js";

/** What a hold needs to know to reserve and settle. */
export interface HoldOptions {
  meterKey: string;
  /** Input and output on separate meters, held together in one reservation (see `MeteringOptions.meterKeys`). */
  meterKeys?: { input: string; output: string } | undefined;
  unit: MeteringUnit;
  prices: PriceTable;
  ttl?: number;
  idempotencyKey?: string;
  metadata?: Record<string, unknown>;
  onSettle?: (settlement: Settlement) => void;
}

/** How a call ended, as far as charging goes. */
export type Ending =
  | { kind: "usage"; usage: ProviderUsage; source: "provider" | "counted"; partial: boolean }
  | { kind: "release" };

/**
 * One reservation from reserve to settlement. Settles at most once: the first ending wins and
 * every later call gets the same result, so racing paths (a consumer abort while the last chunk
 * arrives) cannot charge twice.
 */
export class Hold {
  readonly reservationId: string;
  readonly bound: UpperBound;
  readonly held: number;
  #settling: Promise<Settlement> | undefined;

  private constructor(
    private readonly meter: MeterApi,
    private readonly userId: string,
    private readonly options: HoldOptions,
    reservationId: string,
    bound: UpperBound,
    held: number,
    /** On a two-sided hold: the counter each side's meter charges. */
    private readonly counters?: { input: string; output: string },
  ) {
    this.reservationId = reservationId;
    this.bound = bound;
    this.held = held;
  }

  /**
   * Reserves `bound.amount` on `meterKey`, or with `meterKeys` its input side on one meter and
   * its output side on the other in one all-or-nothing reservation; a denial is a
   * {@link LimitReachedError}.
   */
  static async reserve(meter: MeterApi, userId: string, bound: UpperBound, options: HoldOptions): Promise<Hold> {
    const reserveOptions = {
      model: bound.model,
      ...(options.ttl !== undefined ? { ttl: options.ttl } : {}),
      ...(options.idempotencyKey !== undefined ? { idempotencyKey: options.idempotencyKey } : {}),
      metadata: { ...options.metadata, inputTokens: bound.inputTokens, maxOutputTokens: bound.outputTokens },
    };
    const keys = options.meterKeys;
    if (!keys) {
      const r = await meter.reserve(userId, options.meterKey, bound.amount, reserveOptions);
      if (!r.allowed) throw denied(r);
      return new Hold(meter, userId, options, r.reservationId, bound, r.amount ?? bound.amount);
    }
    // A side of zero (maxTokens 0) still holds one unit: the ledger holds positive amounts only.
    const r = await meter.reserve(userId, { [keys.input]: Math.max(1, bound.sides.input), [keys.output]: Math.max(1, bound.sides.output) }, reserveOptions);
    if (!r.allowed) throw denied(r);
    const parts = Object.entries(r.parts);
    const counterOf = (meterKey: string) => parts.find(([, p]) => p.meterKey === meterKey)?.[0] ?? meterKey;
    const held = parts.reduce((sum, [, p]) => sum + p.amount, 0);
    return new Hold(meter, userId, options, r.reservationId, bound, held, { input: counterOf(keys.input), output: counterOf(keys.output) });
  }

  get settled(): boolean {
    return this.#settling !== undefined;
  }

  /** Charges or releases, once. */
  settle(ending: Ending): Promise<Settlement> {
    this.#settling ??= this.#run(ending).then((s) => {
      this.options.onSettle?.(s);
      return s;
    });
    return this.#settling;
  }

  async #run(ending: Ending): Promise<Settlement> {
    const keys = this.options.meterKeys;
    const base = {
      reservationId: this.reservationId,
      model: this.bound.model,
      meterKey: keys ? `${keys.input}+${keys.output}` : this.options.meterKey,
      unit: this.options.unit,
      held: this.held,
    };
    if (ending.kind === "release") {
      const r = await this.meter.release(this.reservationId);
      return {
        ...base,
        outcome: "released",
        committed: 0,
        refunded: r.released,
        overage: 0,
        exact: "0",
        usage: ZERO,
        usageSource: "none",
        partial: false,
        remaining: r.remaining,
        ...(r.parts ? { parts: mapParts(r.parts, (p) => ({ meterKey: this.#meterOf(p), held: p.released, committed: 0, refunded: p.released, overage: 0 })) } : {}),
      };
    }
    const usage = normalize(ending.usage);
    const charge = this.#charge(usage);
    let result: CommitResult;
    try {
      result = await this.meter.commit(this.reservationId, charge.commit);
    } catch (err) {
      if (!isExpired(err)) throw err;
      // The hold lapsed while the model ran: charge the tokens as plain usage so nothing is lost.
      const tracks = this.#expiredTracks(usage);
      let remaining: number | null | undefined;
      for (const t of tracks) {
        if (t.amount <= 0) continue;
        const tracked = await this.meter.track(this.userId, t.meterKey, t.amount, {
          reservationId: t.reservationId,
          model: this.bound.model,
          idempotencyKey: `${t.reservationId}:expired`,
        });
        remaining = remaining === undefined ? tracked.remaining : minRemaining(remaining, tracked.remaining);
      }
      const amount = tracks.reduce((sum, t) => sum + t.amount, 0);
      return {
        ...base,
        outcome: "tracked",
        committed: amount,
        refunded: 0,
        overage: 0,
        exact: charge.exact,
        usage,
        usageSource: ending.source,
        partial: ending.partial,
        remaining: remaining ?? 0,
      };
    }
    return {
      ...base,
      outcome: "committed",
      held: result.held,
      committed: result.committed,
      refunded: result.refunded,
      overage: result.overage,
      exact: charge.exact,
      usage,
      usageSource: ending.source,
      partial: ending.partial,
      remaining: result.remaining,
      ...(result.parts
        ? { parts: mapParts(result.parts, (p) => ({ meterKey: this.#meterOf(p), held: p.held, committed: p.committed, refunded: p.refunded, overage: p.overage })) }
        : {}),
    };
  }

  /** The meter key of a part of a two-sided hold (results name counters). */
  #meterOf(part: { reservationId: string }): string {
    const keys = this.options.meterKeys!;
    return part.reservationId.endsWith(`.${this.counters!.output}`) ? keys.output : keys.input;
  }

  /** What to `track` when the hold lapsed: the whole charge on `meterKey`, or each side on its meter. */
  #expiredTracks(usage: Required<ProviderUsage>): { meterKey: string; amount: number; reservationId: string }[] {
    const keys = this.options.meterKeys;
    if (!keys) return [{ meterKey: this.options.meterKey, amount: this.amountOf(usage), reservationId: this.reservationId }];
    const sides = this.#sides(usage);
    const amountOf = (fine: bigint, tokens: number) => (this.options.unit === "tokens" ? tokens : ceilFine(fine));
    return [
      { meterKey: keys.input, amount: amountOf(sides.fineIn, usage.inputTokens), reservationId: `${this.reservationId}.${this.counters!.input}` },
      { meterKey: keys.output, amount: amountOf(sides.fineOut, usage.outputTokens), reservationId: `${this.reservationId}.${this.counters!.output}` },
    ];
  }

  /** The exact cost of each side of `usage` in fine units (`cents` holds). */
  #sides(usage: Required<ProviderUsage>): { fineIn: bigint; fineOut: bigint; price: ReturnType<typeof priceOf> } {
    const price = priceOf(this.options.prices, this.bound.model);
    const fineIn = fineCostOfUsage(price, { ...usage, outputTokens: 0, reasoningTokens: 0 });
    return { fineIn, fineOut: fineCostOfUsage(price, usage) - fineIn, price };
  }

  /** The charge for `usage` in the hold's unit, computed here (the track fallback). */
  amountOf(usage: Required<ProviderUsage>): number {
    if (this.options.unit === "tokens") return usage.inputTokens + usage.outputTokens;
    return costOf({ model: this.bound.model, ...usage }, { unit: "cents", prices: this.options.prices }).amount;
  }

  /**
   * What to commit: a `tokens` counter takes the counts; a `cents` counter takes counts that the
   * ledger's three token prices turn into the exact cost (cache writes and long-context tiers
   * included, see `ledgerUsage`), so the ledger's carried remainder keeps the sum exact.
   */
  #charge(usage: Required<ProviderUsage>): { commit: CommitOptions; exact: string } {
    const counts = { inputTokens: usage.inputTokens, cachedInputTokens: usage.cachedInputTokens, outputTokens: usage.outputTokens };
    const keys = this.options.meterKeys;
    if (this.options.unit === "tokens") {
      const exact = String(usage.inputTokens + usage.outputTokens);
      // Each side named by its meter: input tokens (cache reads and writes are input) to one,
      // output tokens (reasoning is output) to the other, whatever the meters' `counts` say.
      if (keys) return { commit: { actual: { [keys.input]: usage.inputTokens, [keys.output]: usage.outputTokens } }, exact };
      return { commit: { usage: counts }, exact };
    }
    if (!keys) {
      const charge = ledgerUsage(priceOf(this.options.prices, this.bound.model), usage);
      return { commit: { usage: charge.usage }, exact: fineToDecimal(charge.exact) };
    }
    // Two cents counters: the input part prices the input counts (cache writes and the tier
    // folded in as by `ledgerUsage`), the output part the output tokens, at the output price,
    // rounded up to whole tokens (by less than one token's price) when a tier raises it.
    const { fineIn, fineOut, price } = this.#sides(usage);
    const input = ledgerUsage(price, { ...usage, outputTokens: 0, reasoningTokens: 0 }).usage;
    const pout = fineCostOfTokens(1, price.output);
    const outputTokens = pout > 0n ? Number((fineOut + pout - 1n) / pout) : 0;
    return { commit: { usage: { inputTokens: input.inputTokens, cachedInputTokens: input.cachedInputTokens, outputTokens } }, exact: fineToDecimal(fineIn + fineOut) };
  }
}

function denied(r: Extract<ReserveResult, { allowed: false }>): LimitReachedError {
  return new LimitReachedError({ counter: r.counter, remaining: r.remaining, required: r.required, ...(r.retryAfter !== undefined ? { retryAfter: r.retryAfter } : {}) });
}

function mapParts<P extends { reservationId: string }>(parts: Record<string, P>, f: (p: P) => SettlementPart): Record<string, SettlementPart> {
  const out: Record<string, SettlementPart> = {};
  for (const [counter, p] of Object.entries(parts)) out[counter] = f(p);
  return out;
}

function minRemaining(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null ? a : Math.min(a, b);
}

const ZERO: Required<ProviderUsage> = Object.freeze({ inputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 0, reasoningTokens: 0 });

function normalize(usage: ProviderUsage): Required<ProviderUsage> {
  const inputTokens = wholeTokens(usage.inputTokens);
  const outputTokens = wholeTokens(usage.outputTokens);
  // A provider cannot serve or write more from cache than it read; clamp rather than fail the charge.
  const cachedInputTokens = Math.min(wholeTokens(usage.cachedInputTokens ?? 0), inputTokens);
  const cacheWriteTokens = Math.min(wholeTokens(usage.cacheWriteTokens ?? 0), inputTokens - cachedInputTokens);
  const cacheWrite1hTokens = Math.min(wholeTokens(usage.cacheWrite1hTokens ?? 0), inputTokens - cachedInputTokens - cacheWriteTokens);
  const reasoningTokens = Math.min(wholeTokens(usage.reasoningTokens ?? 0), outputTokens);
  return { inputTokens, cachedInputTokens, cacheWriteTokens, cacheWrite1hTokens, outputTokens, reasoningTokens };
}

function wholeTokens(n: unknown): number {
  return typeof n === "number" && Number.isFinite(n) && n > 0 ? Math.ceil(n) : 0;
}

function isExpired(err: unknown): boolean {
  const e = err as { code?: unknown; details?: { reason?: unknown } } | null;
  return e?.code === "conflict" && e.details?.reason === "expired";
}
