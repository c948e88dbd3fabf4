import { randomUUID } from "node:crypto";
import { assertAmount } from "../../core/amounts.js";
import { MeterError } from "../../core/errors.js";
import { toMeterError } from "../db.js";
import type { MeterInternals } from "../createMeter.js";
import type { ResolvedStripeConfig } from "./config.js";
import { describeStripeError, isRetryableStripeError } from "./stripeError.js";

/** Options of `meter.syncStripeMeters()`. */
export interface SyncStripeMetersOptions {
  /** Most periods pushed in this run. Default 10 000. */
  limit?: number;
  /**
   * How long a run may hold a period before another run takes it over (a crashed run's lease
   * runs out), in ms. Must exceed a request's timeout. Default 120 000.
   */
  leaseMs?: number;
  /** Timeout of one Stripe request, in ms. Default 30 000. */
  requestTimeoutMs?: number;
  /** Requests in flight at once. Default 4. */
  concurrency?: number;
  /** Put periods that failed for good (a 4xx from Stripe) back in the queue first. Default false. */
  retryFailed?: boolean;
}

/** One (user, counter, period) of a sync report. */
export interface MeterSyncItem {
  userId: string;
  counter: string;
  periodStart: string;
  periodEnd: string;
  value: number;
  identifier: string;
  /** Why it was not sent (failed and too-old items). */
  error?: string;
  /** Failed items: whether a later run tries again by itself. */
  willRetry?: boolean;
}

/** What one run did. */
export interface SyncStripeMetersResult {
  /** Closed periods newly queued. */
  queued: number;
  sent: MeterSyncItem[];
  failed: MeterSyncItem[];
  /** Periods older than Stripe accepts (35 days), never sent: bill them by hand. */
  tooOld: MeterSyncItem[];
  /** Periods still waiting in the queue (to retry later, or beyond `limit`). */
  pending: number;
  /** Periods that failed for good or were too old, over all runs: need a person. */
  needsAttention: number;
}

interface OutboxRow {
  user_id: string;
  counter_key: string;
  period_start: Date;
  period_end: Date;
  event_name: string;
  value: string;
  identifier: string;
  attempts: number;
}

/** Stripe accepts meter events up to 35 days old; keep a margin for the request's own delay. */
const MAX_AGE_MS = 35 * 86_400_000 - 10 * 60_000;

/**
 * Pushes the total of every closed period of the counters mapped to Stripe Meters, once.
 *
 * 1. Closed periods with usage are queued in the outbox (idempotently: one row per period).
 * 2. Due rows are claimed with a lease (`FOR UPDATE SKIP LOCKED`): concurrent runs split the work.
 * 3. Each is sent with a deterministic `identifier` and the same Stripe idempotency key, so a
 *    row re-sent after a crash between the push and step 4 is deduplicated by Stripe.
 * 4. The row is marked sent; a 5xx, 429 or timeout puts it back with a backoff, a 4xx marks it
 *    failed (reported), a period older than 35 days is marked too old (reported).
 */
export async function syncStripeMeters(
  internals: Pick<MeterInternals, "pool" | "schema" | "schemaName" | "ledger">,
  stripe: ResolvedStripeConfig,
  options: SyncStripeMetersOptions = {},
): Promise<SyncStripeMetersResult> {
  const limit = options.limit === undefined ? 10_000 : assertAmount(options.limit, "limit");
  const leaseMs = options.leaseMs === undefined ? 120_000 : assertAmount(options.leaseMs, "leaseMs");
  const timeout = options.requestTimeoutMs === undefined ? 30_000 : assertAmount(options.requestTimeoutMs, "requestTimeoutMs");
  const concurrency = options.concurrency === undefined ? 4 : assertAmount(options.concurrency, "concurrency");
  const s = internals.schema;
  const result: SyncStripeMetersResult = { queued: 0, sent: [], failed: [], tooOld: [], pending: 0, needsAttention: 0 };
  if (stripe.meters.size === 0) return result;
  await internals.ledger.ready();

  const query = async <R extends object>(sql: string, params: unknown[]): Promise<R[]> => {
    try {
      return (await internals.pool.query<R>(sql, params)).rows;
    } catch (err) {
      throw toMeterError(err);
    }
  };

  // 1. Queue what closed since the last run.
  if (options.retryFailed) {
    await query(`UPDATE ${s}.stripe_meter_outbox SET status = 'pending', next_attempt_at = now() WHERE status = 'failed'`, []);
  }
  // Post-paid plans only; rows queued for other users (before 0011) are marked skipped.
  const counters = JSON.stringify(Object.fromEntries([...stripe.meters].map(([k, m]) => [k, { event: m.eventName, plans: m.plans }])));
  await query(`SELECT ${s}.stripe_skip_prepaid_periods($1::jsonb)`, [counters]);
  const [q] = await query<{ n: number }>(`SELECT ${s}.stripe_enqueue_postpaid_periods($1::jsonb, $2) AS n`, [counters, stripe.meterSettleMs]);
  result.queued = q?.n ?? 0;

  // 2–4. Claim, send, record, until nothing is due or the limit is reached.
  const claim = randomUUID();
  let done = 0;
  while (done < limit) {
    const rows = await query<OutboxRow>(`SELECT * FROM ${s}.stripe_claim_meter_events($1, $2, $3)`, [claim, Math.min(100, limit - done), leaseMs]);
    if (rows.length === 0) break;
    done += rows.length;
    const customers = new Map(
      (
        await query<{ user_id: string; customer_id: string }>(
          `SELECT user_id, customer_id FROM ${s}.stripe_customers WHERE user_id = ANY($1)`,
          [[...new Set(rows.map((r) => r.user_id))]],
        )
      ).map((r) => [r.user_id, r.customer_id]),
    );
    let next = 0;
    const worker = async () => {
      while (next < rows.length) {
        const row = rows[next++]!;
        await pushOne(row, customers.get(row.user_id) ?? null);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, rows.length) }, worker));
  }

  const [counts] = await query<{ pending: number; attention: number }>(
    `SELECT count(*) FILTER (WHERE status IN ('pending', 'sending'))::int AS pending,
            count(*) FILTER (WHERE status IN ('failed', 'too_old'))::int AS attention
     FROM ${s}.stripe_meter_outbox`,
    [],
  );
  result.pending = counts?.pending ?? 0;
  result.needsAttention = counts?.attention ?? 0;
  return result;

  async function pushOne(row: OutboxRow, customer: string | null): Promise<void> {
    const item: MeterSyncItem = {
      userId: row.user_id,
      counter: row.counter_key,
      periodStart: row.period_start.toISOString(),
      periodEnd: row.period_end.toISOString(),
      value: Number(row.value),
      identifier: row.identifier,
    };
    const key = [row.user_id, row.counter_key, row.period_start];
    // The last second of the period: inside it, whatever Stripe's own billing period.
    const timestamp = Math.floor(row.period_end.getTime() / 1000) - 1;
    if (timestamp * 1000 < Date.now() - MAX_AGE_MS) {
      item.error = "The period ended more than 35 days ago: Stripe no longer accepts its usage.";
      await mark(key, "too_old", item.error);
      result.tooOld.push(item);
      return;
    }
    if (!customer) {
      item.error = `User ${row.user_id} has no linked Stripe customer (linkStripeCustomer).`;
      item.willRetry = true;
      await retryLater(key, row.attempts, item.error);
      result.failed.push(item);
      return;
    }
    const m = stripe.meters.get(row.counter_key);
    try {
      await stripe.client.billing.meterEvents.create(
        {
          event_name: row.event_name,
          identifier: row.identifier,
          timestamp,
          payload: { [m?.customerKey ?? "stripe_customer_id"]: customer, [m?.valueKey ?? "value"]: row.value },
        },
        { idempotencyKey: row.identifier, timeout },
      );
    } catch (err) {
      item.error = describeStripeError(err);
      if (isRetryableStripeError(err)) {
        item.willRetry = true;
        await retryLater(key, row.attempts, item.error);
      } else {
        item.willRetry = false;
        await mark(key, "failed", item.error);
      }
      result.failed.push(item);
      return;
    }
    // Sent, even if our lease ran out meanwhile: Stripe has it.
    await query(
      `UPDATE ${s}.stripe_meter_outbox SET status = 'sent', sent_at = now(), last_error = NULL, claim = NULL, lease_until = NULL
       WHERE user_id = $1 AND counter_key = $2 AND period_start = $3`,
      key,
    );
    result.sent.push(item);
  }

  async function mark(key: unknown[], status: "failed" | "too_old", error: string): Promise<void> {
    await query(
      `UPDATE ${s}.stripe_meter_outbox SET status = $4, last_error = $5, claim = NULL, lease_until = NULL
       WHERE user_id = $1 AND counter_key = $2 AND period_start = $3 AND status = 'sending' AND claim = $6`,
      [...key, status, error, claim],
    );
  }

  async function retryLater(key: unknown[], attempts: number, error: string): Promise<void> {
    // 1 s, 2 s, 4 s … capped at an hour.
    const backoffMs = Math.min(3_600_000, 1000 * 2 ** Math.min(attempts - 1, 12));
    await query(
      `UPDATE ${s}.stripe_meter_outbox SET status = 'pending', last_error = $4, claim = NULL, lease_until = NULL,
         next_attempt_at = now() + $5 * interval '1 millisecond'
       WHERE user_id = $1 AND counter_key = $2 AND period_start = $3 AND status = 'sending' AND claim = $6`,
      [...key, error, backoffMs, claim],
    );
  }
}

/** For `meter.syncStripeMeters()` without `createMeter({ stripe })`. */
export function stripeNotConfigured(): MeterError {
  return new MeterError("invalid_request", "syncStripeMeters needs createMeter({ stripe: { client, meters, … } }).");
}
