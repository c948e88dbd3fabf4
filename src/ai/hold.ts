import { LimitReachedError } from "../core/errors.js";
import { priceOf, type ProviderUsage } from "../core/pricing.js";
import type { CommitResult, MeterApi, PriceTable, TokenUsage } from "../core/types.js";
import { costOf, fineToDecimal } from "./costOf.js";
import { ledgerUsage } from "./ledgerUsage.js";
import type { UpperBound } from "./upperBound.js";
import type { MeteringUnit, Settlement } from "./types.js";

/** What a hold needs to know to reserve and settle. */
export interface HoldOptions {
  meterKey: string;
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
  ) {
    this.reservationId = reservationId;
    this.bound = bound;
    this.held = held;
  }

  /** Reserves `bound.amount`; a denial is a {@link LimitReachedError}. */
  static async reserve(meter: MeterApi, userId: string, bound: UpperBound, options: HoldOptions): Promise<Hold> {
    const r = await meter.reserve(userId, options.meterKey, bound.amount, {
      model: bound.model,
      ...(options.ttl !== undefined ? { ttl: options.ttl } : {}),
      ...(options.idempotencyKey !== undefined ? { idempotencyKey: options.idempotencyKey } : {}),
      metadata: { ...options.metadata, inputTokens: bound.inputTokens, maxOutputTokens: bound.outputTokens },
    });
    if (!r.allowed) throw new LimitReachedError({ counter: r.counter, remaining: r.remaining, required: r.required, ...(r.retryAfter !== undefined ? { retryAfter: r.retryAfter } : {}) });
    return new Hold(meter, userId, options, r.reservationId, bound, r.amount ?? bound.amount);
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
    const base = { reservationId: this.reservationId, model: this.bound.model, meterKey: this.options.meterKey, unit: this.options.unit, held: this.held };
    if (ending.kind === "release") {
      const r = await this.meter.release(this.reservationId);
      return { ...base, outcome: "released", committed: 0, refunded: r.released, overage: 0, exact: "0", usage: ZERO, usageSource: "none", partial: false, remaining: r.remaining };
    }
    const usage = normalize(ending.usage);
    const charge = this.#charge(usage);
    let result: CommitResult;
    try {
      result = await this.meter.commit(this.reservationId, { usage: charge.usage });
    } catch (err) {
      if (!isExpired(err)) throw err;
      // The hold lapsed while the model ran: charge the tokens as plain usage so nothing is lost.
      const amount = this.amountOf(usage);
      const tracked =
        amount > 0
          ? await this.meter.track(this.userId, this.options.meterKey, amount, {
              reservationId: this.reservationId,
              model: this.bound.model,
              idempotencyKey: `${this.reservationId}:expired`,
            })
          : undefined;
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
        remaining: tracked?.remaining ?? 0,
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
    };
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
  #charge(usage: Required<ProviderUsage>): { usage: Required<TokenUsage>; exact: string } {
    const counts = { inputTokens: usage.inputTokens, cachedInputTokens: usage.cachedInputTokens, outputTokens: usage.outputTokens };
    if (this.options.unit === "tokens") return { usage: counts, exact: String(usage.inputTokens + usage.outputTokens) };
    const charge = ledgerUsage(priceOf(this.options.prices, this.bound.model), usage);
    return { usage: charge.usage, exact: fineToDecimal(charge.exact) };
  }
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
