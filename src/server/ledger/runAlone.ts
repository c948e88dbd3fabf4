import type pg from "pg";
import { query, statementName } from "../db.js";
import type { LedgerClaim } from "./context.js";

/**
 * Runs ledger function `fn` alone, as one named statement (prepared once per connection, see
 * `query`), and answers its result: `SELECT <schema>.fn($1…) AS r`, or, with a `claim`, the same
 * call behind the claim of the HTTP `Idempotency-Key` (0033_http_one_round_trip.sql): a key bound
 * to another request raises `conflict` before the function runs, and a function that fails rolls
 * the claim back with it. An unbatched call and a batch of one both go out this way.
 */
export async function runAlone<T>(pool: pg.Pool, schema: string, fn: string, params: unknown[], claim?: LedgerClaim | null): Promise<T> {
  const placeholders = params.map((_, i) => `$${i + 1}`).join(", ");
  const call = `${schema}.${fn}(${placeholders})`;
  const n = params.length;
  // CASE evaluates its WHEN before its THEN, and the THEN only when the WHEN holds.
  const text = claim ? `SELECT CASE WHEN ${schema}.http_claim_in($${n + 1}, $${n + 2}) THEN ${call} END AS r` : `SELECT ${call} AS r`;
  const { rows } = await query<{ r: T }>(pool, text, claim ? [...params, claim.key, claim.fingerprint] : params, statementName(text));
  return rows[0]!.r;
}
