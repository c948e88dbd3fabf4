import type pg from "pg";
import { toMeterError } from "../db.js";

/**
 * The lease-based outbox pattern of `syncStripeMeters`, for tables keyed by one `id` column
 * with the usual columns: `status` ('pending' → 'sending' → a final status), `attempts`,
 * `claim`, `lease_until`, `next_attempt_at`, `last_error`. A row is worked on by whoever holds
 * its lease; a crashed worker's lease runs out and another takes the row over; a row retried
 * later waits with an exponential backoff. Concurrent workers split the due rows
 * (`FOR UPDATE SKIP LOCKED`).
 */
export interface Outbox {
  /** Claims up to `limit` due rows (pending and due, or sending with a lapsed lease) for `claim`. */
  claim<R extends object>(claim: string, limit: number, leaseMs: number): Promise<R[]>;
  /** Puts a row back for a later attempt (only if `claim` still holds it). */
  retryLater(id: string, claim: string, attempts: number, error: string): Promise<void>;
  /** Moves a row held by `claim` to a final status with extra column values; false when the lease was lost. */
  finish(id: string, claim: string, status: string, set?: Record<string, unknown>): Promise<boolean>;
}

/** 1 s, 2 s, 4 s … capped at an hour: the delay before attempt `attempts + 1`. */
export function backoffMs(attempts: number): number {
  return Math.min(3_600_000, 1000 * 2 ** Math.min(Math.max(attempts - 1, 0), 12));
}

/** Runs one statement, mapping errors to MeterErrors. */
export async function run<R extends object>(pool: pg.Pool, sql: string, params: unknown[]): Promise<R[]> {
  try {
    return (await pool.query<R & pg.QueryResultRow>(sql, params)).rows;
  } catch (err) {
    throw toMeterError(err);
  }
}

/** The outbox of `schema.table` (both already quoted / trusted identifiers). */
export function createOutbox(pool: pg.Pool, schema: string, table: string): Outbox {
  const t = `${schema}.${table}`;
  return {
    claim: <R extends object>(claim: string, limit: number, leaseMs: number) =>
      run<R>(
        pool,
        `UPDATE ${t} o SET status = 'sending', claim = $1, attempts = o.attempts + 1, updated_at = now(),
           lease_until = now() + $3 * interval '1 millisecond'
         WHERE o.id IN (
           SELECT id FROM ${t}
           WHERE (status = 'pending' AND next_attempt_at <= now()) OR (status = 'sending' AND lease_until <= now())
           ORDER BY next_attempt_at, id
           LIMIT $2
           FOR UPDATE SKIP LOCKED)
         RETURNING o.*`,
        [claim, limit, leaseMs],
      ),
    async retryLater(id, claim, attempts, error) {
      await run(
        pool,
        `UPDATE ${t} SET status = 'pending', last_error = $3, claim = NULL, lease_until = NULL, updated_at = now(),
           next_attempt_at = now() + $4 * interval '1 millisecond'
         WHERE id = $1 AND status = 'sending' AND claim = $2`,
        [id, claim, error.slice(0, 2000), backoffMs(attempts)],
      );
    },
    async finish(id, claim, status, set = {}) {
      const cols = Object.keys(set);
      if (cols.some((c) => !/^[a-z_]+$/.test(c))) throw new Error("outbox: bad column name");
      const extra = cols.map((c, i) => `, ${c} = $${i + 4}`).join("");
      const rows = await run(
        pool,
        `UPDATE ${t} SET status = $3, claim = NULL, lease_until = NULL, updated_at = now()${extra}
         WHERE id = $1 AND status = 'sending' AND claim = $2 RETURNING id`,
        [id, claim, status, ...cols.map((c) => set[c])],
      );
      return rows.length > 0;
    },
  };
}
