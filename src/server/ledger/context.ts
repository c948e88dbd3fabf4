import type pg from "pg";
import type { ResolvedConfig } from "../config.js";
import { BATCHED_FUNCTIONS, type Batcher } from "./batcher.js";
import { runAlone } from "./runAlone.js";

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
  /** Coalesces concurrent hot-path calls (`createMeter({ batch })`); null when batching is off. */
  batcher?: Batcher | null;
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
 * is taken and released inside Postgres. The statement is named, so each connection parses
 * and plans it once (see `query`). With a `claim`, the same statement first claims the HTTP
 * `Idempotency-Key` (see {@link runAlone}). With batching on, a hot-path call, claimed or
 * not, may share one statement (and its transaction) with other calls; it answers the same
 * either way (0041_batch_claims.sql: a claim in a batch is made right before its operation).
 *
 * After the call, `announce` (default: the result's `userId`) is announced to live streams;
 * `null` for a read. A read must announce no one: every announcement makes each live hub
 * re-read that user, so a read that announced would keep every open stream's user re-read in
 * a loop for as long as the stream is open.
 */
export async function callLedger<T>(ctx: LedgerContext, fn: string, params: unknown[], announce?: string | null): Promise<T> {
  await ctx.ready();
  const r =
    ctx.batcher && BATCHED_FUNCTIONS.has(fn)
      ? await ctx.batcher.call<T>(fn, params, ctx.claim)
      : await runAlone<T>(ctx.pool, ctx.schema, fn, params, ctx.claim);
  const who = announce === undefined ? (r as { userId?: unknown } | null)?.userId : announce;
  if (typeof who === "string") ctx.announce(who);
  return r;
}
