import { randomUUID } from "node:crypto";
import type Stripe from "stripe";
import { assertAmount, assertId, describe } from "../../core/amounts.js";
import { MeterError } from "../../core/errors.js";
import type { MeterInternals } from "../createMeter.js";
import { assertCounter } from "../config.js";
import { createOutbox, run } from "../outbox/outbox.js";
import type { ResolvedStripeConfig } from "../stripe/config.js";
import { describeStripeError, isRetryableStripeError } from "../stripe/stripeError.js";
import { creditTopUp, type TopUpInternals } from "./creditTopUp.js";
import { onceByKey } from "./settingsKeys.js";
import { setupCheckout } from "./setupCheckout.js";
import type {
  AutoTopUpApi,
  AutoTopUpOptions,
  AutoTopUpPauseReason,
  AutoTopUpSettingsInput,
  AutoTopUpState,
  RunAutoTopUpResult,
} from "./types.js";

/** Metadata keys of an auto top-up PaymentIntent (besides the pack's, see `METADATA`). */
export const AUTO_TOP_UP_METADATA = "meterkit_auto_top_up";

/** The engine behind `meter.autoTopUp`, plus what createMeter wires: the after-commit hook and close(). */
export interface AutoTopUpEngine extends AutoTopUpApi {
  /** Queues an observation of `userId` (after a committed change); coalesced, never throws. */
  changed(userId: string): void;
  stop(): void;
  /**
   * Stores a card saved for off-session use (from a webhook; an older event never replaces a
   * newer card) and resumes counters paused for a card problem, firing at once if below.
   */
  savePaymentMethod(userId: string, customer: string, paymentMethod: string, eventCreated: number): Promise<void>;
}

interface SettingsRow {
  user_id: string;
  counter_key: string;
  enabled: boolean;
  pack_id: string;
  threshold: string;
  max_per_period: string;
  status: "active" | "paused";
  paused_reason: AutoTopUpPauseReason | null;
  paused_message: string | null;
}

interface ChargeRow {
  id: string;
  user_id: string;
  counter_key: string;
  pack_id: string;
  credits: string;
  amount: string;
  currency: string;
  attempts: number;
}

type Internals = Pick<MeterInternals, "pool" | "schema" | "schemaName" | "config" | "ledger">;

/**
 * Builds the auto top-up engine over the Stripe integration. Trigger rule: the first change
 * that takes a counter's `remaining` from at/above its threshold to below it arms one charge;
 * see docs/auto-top-up.md.
 */
export function createAutoTopUp(
  internals: Internals,
  stripe: ResolvedStripeConfig | null,
  options: AutoTopUpOptions | undefined,
  hooks: { alerts: () => boolean; kickAlerts: () => void } = { alerts: () => false, kickAlerts: () => {} },
): AutoTopUpEngine {
  const o = options ?? {};
  const interval = o.interval === undefined ? 5_000 : assertAmount(o.interval, "autoTopUp.interval", { allowZero: true });
  const leaseMs = o.leaseMs === undefined ? 120_000 : assertAmount(o.leaseMs, "autoTopUp.leaseMs");
  const timeout = o.requestTimeoutMs === undefined ? 30_000 : assertAmount(o.requestTimeoutMs, "autoTopUp.requestTimeoutMs");
  const s = internals.schema;
  const outbox = createOutbox(internals.pool, s, "auto_top_up_charges");
  // The packs as the arming SQL reads them.
  const packsJson = JSON.stringify(
    Object.fromEntries(
      [...(stripe?.packs.values() ?? [])].map((p) => [p.id, { credits: p.amount, amount: p.price.amount, currency: p.price.currency, counter: p.counter }]),
    ),
  );
  const topUp: TopUpInternals = { ...internals, alerts: hooks.alerts };

  const need = (): ResolvedStripeConfig => {
    if (!stripe) throw new MeterError("not_found", "Auto top-up needs createMeter({ stripe: { client, packs, … } }).", { reason: "billing_not_configured" });
    return stripe;
  };

  // --- observing (after commit, off the ledger's hot path)
  let pending = new Set<string>();
  let observing: Promise<void> | null = null;
  const observeBatch = async (): Promise<void> => {
    while (pending.size > 0) {
      const batch = [...pending].sort();
      pending = new Set();
      try {
        // One cheap indexed read per batch keeps users without auto top-up to one statement.
        const rows = await run<{ user_id: string }>(
          internals.pool,
          `SELECT DISTINCT user_id FROM ${s}.auto_top_up WHERE enabled AND user_id = ANY($1::text[])`,
          [batch],
        );
        for (const r of rows) await observe(r.user_id);
      } catch {
        // Best effort: the worker's pass re-observes every enabled user.
      }
    }
  };
  const observe = async (userId: string, force: string[] = []): Promise<void> => {
    await internals.ledger.ready();
    const [row] = await run<{ r: Array<{ id?: string }> }>(internals.pool, `SELECT ${s}.auto_top_up_observe($1, $2::jsonb, $3::text[]) AS r`, [
      userId,
      packsJson,
      force,
    ]);
    if (row?.r.some((x) => x.id)) wake();
  };

  // --- the worker
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<RunAutoTopUpResult> | null = null;
  let stopped = false;
  const wake = () => {
    if (interval === 0 || stopped) return;
    setImmediate(() => {
      if (!running && !stopped) void api.run().catch(() => {});
    });
  };
  if (interval > 0 && stripe) {
    timer = setInterval(() => {
      if (!running) void api.run().catch(() => {});
    }, interval);
    timer.unref();
  }

  async function chargeOne(row: ChargeRow, claim: string, result: RunAutoTopUpResult): Promise<void> {
    const st = need();
    const fail = async (reason: AutoTopUpPauseReason, message: string, paymentIntent: string | null) => {
      await run(internals.pool, `SELECT ${s}.auto_top_up_fail($1, $2, $3, $4, $5)`, [row.id, reason, message, paymentIntent, hooks.alerts()]);
      result.failed.push(row.id);
      hooks.kickAlerts();
    };
    const [pm] = await run<{ customer_id: string; payment_method: string }>(
      internals.pool,
      `SELECT customer_id, payment_method FROM ${s}.payment_methods WHERE user_id = $1`,
      [row.user_id],
    );
    if (!pm) return fail("no_payment_method", "No card is saved for automatic top-ups.", null);
    const metadata: Record<string, string> = {
      meterkit_user_id: row.user_id,
      meterkit_pack_id: row.pack_id,
      meterkit_counter: row.counter_key,
      meterkit_credits: String(row.credits),
      [AUTO_TOP_UP_METADATA]: row.id,
      ...(st.appId ? { meterkit_app: st.appId } : {}),
    };
    let pi: Stripe.PaymentIntent;
    try {
      pi = await st.client.paymentIntents.create(
        {
          amount: Number(row.amount),
          currency: row.currency,
          customer: pm.customer_id,
          payment_method: pm.payment_method,
          off_session: true,
          confirm: true,
          description: `Automatic top-up: ${st.packs.get(row.pack_id)?.label ?? row.pack_id}`,
          metadata,
        },
        // One key per trigger: a retry after a crash or a timeout replays the same charge.
        { idempotencyKey: `meterkit-auto-top-up-${row.id}`, timeout },
      );
    } catch (err) {
      if (isRetryableStripeError(err)) {
        await outbox.retryLater(row.id, claim, row.attempts, describeStripeError(err));
        result.retrying.push(row.id);
        return;
      }
      const e = err as { type?: string; code?: string; message?: string; raw?: { payment_intent?: { id?: string } } };
      const piId = e.raw?.payment_intent?.id ?? null;
      if (e.code === "authentication_required") return fail("requires_action", e.message ?? "The card needs authentication (3-D Secure).", piId);
      if (e.type === "StripeCardError") return fail("card_declined", e.message ?? "The card was declined.", piId);
      return fail("payment_failed", describeStripeError(err), piId);
    }
    if (pi.status === "succeeded") {
      await creditTopUp(topUp, {
        eventId: `meterkit:${row.id}`,
        eventType: "meterkit.auto_top_up.charged",
        chargeId: row.id,
        userId: row.user_id,
        counter: row.counter_key,
        credits: Number(row.credits),
        paymentIntent: pi.id,
        amount: pi.amount,
        currency: pi.currency,
        packId: row.pack_id,
      });
      result.succeeded.push(row.id);
      hooks.kickAlerts();
      await observe(row.user_id).catch(() => {});
    } else if (pi.status === "processing") {
      await outbox.finish(row.id, claim, "processing", { payment_intent: pi.id });
      result.processing.push(row.id);
    } else if (pi.status === "requires_action") {
      await fail("requires_action", "The card needs authentication (3-D Secure).", pi.id);
    } else {
      await fail("payment_failed", `The payment is ${pi.status}.`, pi.id);
    }
  }

  const api: AutoTopUpEngine = {
    async get(userId) {
      const user = assertId(userId, "userId");
      await internals.ledger.ready();
      const [pm] = await run(internals.pool, `SELECT 1 FROM ${s}.payment_methods WHERE user_id = $1`, [user]);
      const rows = await run<SettingsRow>(internals.pool, `SELECT * FROM ${s}.auto_top_up WHERE user_id = $1 ORDER BY counter_key`, [user]);
      return { paymentMethodSaved: pm !== undefined, counters: await Promise.all(rows.map((r) => stateOf(r))) };
    },

    async set(userId, input, options = {}) {
      const st = need();
      const user = assertId(userId, "userId");
      await internals.ledger.ready();
      return onceByKey(internals, user, options.idempotencyKey, "set", input, () => apply(st, user, input));
    },

    async disable(userId, counter, options = {}) {
      const user = assertId(userId, "userId");
      await internals.ledger.ready();
      return onceByKey(internals, user, options.idempotencyKey, "disable", { counter }, async () => {
        const key = assertCounter(internals.config, counter);
        await internals.ledger.ready();
        const [row] = await run<SettingsRow>(
          internals.pool,
          `UPDATE ${s}.auto_top_up SET enabled = false, updated_at = now() WHERE user_id = $1 AND counter_key = $2 RETURNING *`,
          [user, key],
        );
        if (!row) throw new MeterError("not_found", `No auto top-up settings for counter "${key}".`, { counter: key });
        return stateOf(row);
      });
    },

    setupCheckout: (userId, input) => setupCheckout(internals, need(), userId, input ?? {}),

    observe: (userId) => observe(assertId(userId, "userId")),

    async savePaymentMethod(userId, customer, paymentMethod, eventCreated) {
      await internals.ledger.ready();
      await run(
        internals.pool,
        `INSERT INTO ${s}.payment_methods AS t (user_id, customer_id, payment_method, saved_by_event_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id) DO UPDATE SET customer_id = excluded.customer_id, payment_method = excluded.payment_method,
           saved_by_event_at = excluded.saved_by_event_at, updated_at = now()
         WHERE t.saved_by_event_at <= excluded.saved_by_event_at`,
        [userId, customer, paymentMethod, eventCreated],
      );
      const resumed = await run<{ counter_key: string }>(
        internals.pool,
        `UPDATE ${s}.auto_top_up SET status = 'active', paused_reason = NULL, paused_message = NULL, updated_at = now()
         WHERE user_id = $1 AND enabled AND status = 'paused'
           AND paused_reason IN ('card_declined', 'requires_action', 'no_payment_method', 'payment_failed')
         RETURNING counter_key`,
        [userId],
      );
      if (resumed.length > 0) await observe(userId, resumed.map((r) => r.counter_key));
    },

    run(options = {}) {
      need();
      const limit = options.limit === undefined ? 100 : assertAmount(options.limit, "limit");
      const pass = (async () => {
        const result: RunAutoTopUpResult = { observed: 0, succeeded: [], processing: [], failed: [], retrying: [] };
        await internals.ledger.ready();
        // Re-observe enabled users last seen above their threshold: a crossing whose
        // announcement was lost (a crash right after commit) is caught here. (Users seen below
        // cannot cross until they rise, which their next change observes.)
        const users = await run<{ user_id: string }>(
          internals.pool,
          `SELECT DISTINCT user_id FROM ${s}.auto_top_up WHERE enabled AND status = 'active' AND NOT below`,
          [],
        );
        for (const u of users) await observe(u.user_id).catch(() => {});
        result.observed = users.length;
        const claim = randomUUID();
        const rows = await outbox.claim<ChargeRow>(claim, limit, leaseMs);
        for (const row of rows) {
          try {
            await chargeOne(row, claim, result);
          } catch (err) {
            // The database failed mid-way: the lease runs out and a later pass retries with
            // the same idempotency key.
            result.retrying.push(row.id);
            void err;
          }
        }
        return result;
      })();
      running = pass;
      return pass.finally(() => {
        if (running === pass) running = null;
      });
    },

    changed(userId) {
      pending.add(userId);
      if (!observing) {
        observing = new Promise<void>((r) => setImmediate(r)).then(observeBatch).finally(() => {
          observing = null;
        });
      }
    },

    async flush() {
      while (observing || running) await (observing ?? running);
    },

    stop() {
      stopped = true;
      if (timer) clearInterval(timer);
    },
  };

  /** Checks and applies one settings change of `set`; enabling while already below fires at once. */
  async function apply(st: ResolvedStripeConfig, user: string, input: AutoTopUpSettingsInput): Promise<AutoTopUpState> {
    if (!input || typeof input !== "object" || Array.isArray(input)) {
      throw new MeterError("invalid_request", `auto top-up settings must be an object, got ${describe(input)}.`);
    }
    const allowed = new Set(["counter", "enabled", "packId", "threshold", "maxPerPeriod"]);
    for (const k of Object.keys(input)) {
      if (!allowed.has(k)) throw new MeterError("invalid_request", `Unknown auto top-up field "${k.slice(0, 50)}".`, { field: k.slice(0, 50) });
    }
    const counter = assertCounter(internals.config, input.counter);
    if (typeof input.enabled !== "boolean") throw new MeterError("invalid_request", "enabled must be true or false.", { field: "enabled" });
    await internals.ledger.ready();
    const [prior] = await run<SettingsRow>(internals.pool, `SELECT * FROM ${s}.auto_top_up WHERE user_id = $1 AND counter_key = $2`, [user, counter]);
    const packId = input.packId === undefined ? prior?.pack_id : assertId(input.packId, "packId");
    if (packId === undefined) throw new MeterError("invalid_request", "packId is required the first time.", { field: "packId" });
    const pack = st.packs.get(packId);
    if (!pack || pack.counter !== counter) {
      throw new MeterError("invalid_request", `packId "${packId}" is not a pack of counter "${counter}".`, { field: "packId" });
    }
    const threshold = input.threshold === undefined ? prior && Number(prior.threshold) : assertAmount(input.threshold, "threshold");
    if (threshold === undefined) throw new MeterError("invalid_request", "threshold is required the first time.", { field: "threshold" });
    const max = input.maxPerPeriod === undefined ? prior && Number(prior.max_per_period) : assertAmount(input.maxPerPeriod, "maxPerPeriod");
    if (max === undefined) throw new MeterError("invalid_request", "maxPerPeriod is required the first time.", { field: "maxPerPeriod" });
    if (max < pack.price.amount) {
      throw new MeterError("invalid_request", `maxPerPeriod (${max}) is less than the pack's price (${pack.price.amount}): no top-up could ever run.`, {
        field: "maxPerPeriod",
      });
    }
    // Turning it on (again) clears a pause: the user has seen it and chose to go on.
    const [row] = await run<SettingsRow>(
      internals.pool,
      `INSERT INTO ${s}.auto_top_up AS t (user_id, counter_key, enabled, pack_id, threshold, max_per_period)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (user_id, counter_key) DO UPDATE SET enabled = excluded.enabled, pack_id = excluded.pack_id,
         threshold = excluded.threshold, max_per_period = excluded.max_per_period, updated_at = now(),
         status = CASE WHEN excluded.enabled THEN 'active' ELSE t.status END,
         paused_reason = CASE WHEN excluded.enabled THEN NULL ELSE t.paused_reason END,
         paused_message = CASE WHEN excluded.enabled THEN NULL ELSE t.paused_message END
       RETURNING *`,
      [user, counter, input.enabled, packId, threshold, max],
    );
    // Enabling while already below fires at once.
    if (input.enabled) await observe(user, [counter]);
    return stateOf(row!);
  }

  async function stateOf(r: SettingsRow): Promise<AutoTopUpState> {
    const pack = stripe?.packs.get(r.pack_id);
    // The current window, as the arming SQL computes it: the counter's period start, or the
    // calendar month for a counter that never renews.
    const [w] = await run<{ spent: string; in_flight: boolean }>(
      internals.pool,
      `WITH u AS (SELECT ${s}.op_usage($1) AS j),
            win AS (SELECT coalesce((SELECT e ->> 'periodStart' FROM u, jsonb_array_elements(u.j -> 'counters') e WHERE e ->> 'key' = $2),
                                    to_char(date_trunc('month', ${s}.clock() AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"00:00:00.000"Z"')) AS k)
       SELECT coalesce(sum(amount) FILTER (WHERE status <> 'failed' AND window_key = (SELECT k FROM win)), 0) AS spent,
              coalesce(bool_or(status IN ('pending', 'sending', 'processing')), false) AS in_flight
       FROM ${s}.auto_top_up_charges WHERE user_id = $1 AND counter_key = $2`,
      [r.user_id, r.counter_key],
    );
    return {
      counter: r.counter_key,
      enabled: r.enabled,
      status: !r.enabled ? "off" : r.status,
      packId: r.pack_id,
      threshold: Number(r.threshold),
      maxPerPeriod: Number(r.max_per_period),
      currency: pack?.price.currency ?? "usd",
      spentThisPeriod: Number(w?.spent ?? 0),
      inFlight: w?.in_flight === true,
      pausedReason: r.status === "paused" ? r.paused_reason : null,
      pausedMessage: r.status === "paused" ? r.paused_message : null,
    };
  }

  return api;
}
