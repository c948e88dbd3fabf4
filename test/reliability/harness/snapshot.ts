import type pg from "pg";

/**
 * A fingerprint of everything a request could write: row counts and sums of every ledger
 * table. "Nothing written" means it does not change.
 */
export async function writeSnapshot(pool: pg.Pool, schema = "meterkit"): Promise<string> {
  const { rows } = await pool.query<{ tbl: string; n: string; s: string | null }>(`
    SELECT 'entries' AS tbl, count(*)::text AS n, sum(amount)::text AS s FROM ${schema}.entries
    UNION ALL SELECT 'holds', count(*)::text, string_agg(status, '' ORDER BY id) FROM ${schema}.holds
    UNION ALL SELECT 'grants', count(*)::text, sum(remaining)::text FROM ${schema}.grants
    UNION ALL SELECT 'balances', count(*)::text, sum(used)::text FROM ${schema}.balances
    UNION ALL SELECT 'counters', count(*)::text, sum(carry)::text FROM ${schema}.counters
    UNION ALL SELECT 'subscriptions', count(*)::text, sum(version)::text || string_agg(plan_id || custom_limits::text, '' ORDER BY user_id) FROM ${schema}.subscriptions
    UNION ALL SELECT 'idempotency', count(*)::text, NULL FROM ${schema}.idempotency
    UNION ALL SELECT 'http_idempotency', count(*)::text, NULL FROM ${schema}.http_idempotency
    UNION ALL SELECT 'stripe_events', count(*)::text, NULL FROM ${schema}.stripe_events`);
  return rows.map((r) => `${r.tbl}=${r.n}/${r.s ?? ""}`).join(" ");
}
