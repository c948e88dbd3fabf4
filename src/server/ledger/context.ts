import type pg from "pg";
import { query } from "../db.js";
import type { ResolvedConfig } from "../config.js";

/** What every ledger operation needs: the pool, the schema, the checked configuration. */
export interface LedgerContext {
  pool: pg.Pool;
  /** The quoted schema name, e.g. `"meterkit"`. */
  schema: string;
  config: ResolvedConfig;
  /** Default hold lifetime in ms. */
  holdTtl: number;
  /** Resolves once the configuration is synced to the database (first use). */
  ready(): Promise<void>;
  /** Announces a committed change of a user's balances to live streams. */
  announce(userId: string): void;
  /**
   * An HTTP `Idempotency-Key` to claim in the same statement as the ledger call (set only on
   * the per-request context of a keyed `/v1` mutation, see `claimedMeter`). Default: none.
   */
  claim?: LedgerClaim;
}

/** An `Idempotency-Key` and the fingerprint of the request (route and body) it is bound to. */
export interface LedgerClaim {
  key: string;
  fingerprint: string;
}

/**
 * Calls one ledger function: a single statement, so a single round trip; the advisory lock
 * is taken and released inside Postgres. With a `claim`, the same statement first claims the
 * HTTP `Idempotency-Key` (0033_http_one_round_trip.sql): a key bound to another request raises
 * `conflict` before the function runs, and a function that fails rolls the claim back with it.
 */
export async function callLedger<T>(ctx: LedgerContext, fn: string, params: unknown[], userId?: string): Promise<T> {
  await ctx.ready();
  const placeholders = params.map((_, i) => `$${i + 1}`).join(", ");
  const call = `${ctx.schema}.${fn}(${placeholders})`;
  const n = params.length;
  // CASE evaluates its WHEN before its THEN, and the THEN only when the WHEN holds.
  const { rows } = ctx.claim
    ? await query<{ r: T }>(ctx.pool, `SELECT CASE WHEN ${ctx.schema}.http_claim_in($${n + 1}, $${n + 2}) THEN ${call} END AS r`, [
        ...params,
        ctx.claim.key,
        ctx.claim.fingerprint,
      ])
    : await query<{ r: T }>(ctx.pool, `SELECT ${call} AS r`, params);
  const r = rows[0]!.r;
  const who = userId ?? (r as { userId?: unknown } | null)?.userId;
  if (typeof who === "string") ctx.announce(who);
  return r;
}
