import type { LedgerClaim } from "./context.js";

/**
 * The one statement that runs ledger function `fn` alone: `SELECT <schema>.fn($1…) AS r`, or, with
 * a `claim`, the same call behind the claim of the HTTP `Idempotency-Key`
 * (0033_http_one_round_trip.sql): a key bound to another request raises `conflict` before the
 * function runs, and a function that fails rolls the claim back with it. Used by an unbatched
 * call and by a batch of one, so both send the same (named, prepared-once) text.
 */
export function ledgerStatement(schema: string, fn: string, params: unknown[], claim?: LedgerClaim | null): { text: string; values: unknown[] } {
  const placeholders = params.map((_, i) => `$${i + 1}`).join(", ");
  const call = `${schema}.${fn}(${placeholders})`;
  if (!claim) return { text: `SELECT ${call} AS r`, values: params };
  const n = params.length;
  // CASE evaluates its WHEN before its THEN, and the THEN only when the WHEN holds.
  return { text: `SELECT CASE WHEN ${schema}.http_claim_in($${n + 1}, $${n + 2}) THEN ${call} END AS r`, values: [...params, claim.key, claim.fingerprint] };
}
