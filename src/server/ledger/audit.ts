import { query } from "../db.js";
import { optionalId } from "../validate.js";
import type { LedgerContext } from "./context.js";

/** One place where the balance rows disagree with what the entries say. */
export interface AuditDifference {
  userId: string;
  counter: string;
  /** What disagrees: `used`, `used_from_grants`, `grant_remaining`, `hold_status`. */
  field: string;
  /** The period, grant id or hold id concerned. */
  subject: string;
  /** Recomputed from the entries. */
  expected: string;
  /** Stored in the projection. */
  actual: string;
}

/**
 * Recomputes balances, grants and holds from the append-only entries and returns every
 * difference (none, when the ledger is sound). Scans entries: an offline check, not a hot path.
 */
export async function audit(ctx: LedgerContext, userId?: string): Promise<AuditDifference[]> {
  const user = optionalId(userId, "userId");
  await ctx.ready();
  const s = ctx.schema;
  const sql = `
    WITH usage AS (
      SELECT user_id, counter_key, period_start, sum(amount) AS used,
             coalesce(sum((SELECT sum((d->>'amount')::bigint) FROM jsonb_array_elements(from_grants) d)), 0) AS ufg
      FROM ${s}.entries
      WHERE kind IN ('commit', 'track', 'refund', 'adjust') AND ($1::text IS NULL OR user_id = $1)
      GROUP BY 1, 2, 3
    ), bal AS (
      SELECT coalesce(b.user_id, u.user_id) AS user_id, coalesce(b.counter_key, u.counter_key) AS counter_key,
             coalesce(b.period_start, u.period_start) AS period_start,
             coalesce(u.used, 0) AS e_used, coalesce(b.used, 0) AS a_used,
             coalesce(u.ufg, 0) AS e_ufg, coalesce(b.used_from_grants, 0) AS a_ufg
      FROM (SELECT * FROM ${s}.balances WHERE $1::text IS NULL OR user_id = $1) b
      FULL JOIN usage u USING (user_id, counter_key, period_start)
    ), draws AS (
      SELECT d->>'grantId' AS grant_id, sum((d->>'amount')::bigint) AS drawn
      FROM ${s}.entries e, jsonb_array_elements(e.from_grants) d
      WHERE e.from_grants IS NOT NULL AND ($1::text IS NULL OR e.user_id = $1)
      GROUP BY 1
    ), clawed AS (
      SELECT grant_id, sum(amount) AS clawed FROM ${s}.entries
      WHERE kind = 'clawback' AND grant_id IS NOT NULL AND ($1::text IS NULL OR user_id = $1) GROUP BY 1
    ), resolutions AS (
      SELECT hold_id, string_agg(kind, ',' ORDER BY id) AS kinds
      FROM ${s}.entries WHERE kind IN ('commit', 'release', 'expire') AND hold_id IS NOT NULL
        AND ($1::text IS NULL OR user_id = $1)
      GROUP BY 1
    )
    SELECT user_id, counter_key AS counter, 'used' AS field, period_start::text AS subject, e_used::text AS expected, a_used::text AS actual
      FROM bal WHERE e_used <> a_used
    UNION ALL
    SELECT user_id, counter_key, 'used_from_grants', period_start::text, e_ufg::text, a_ufg::text
      FROM bal WHERE e_ufg <> a_ufg
    UNION ALL
    SELECT g.user_id, g.counter_key, 'grant_remaining', g.id,
           (g.amount - coalesce(d.drawn, 0) - coalesce(c.clawed, 0))::text, g.remaining::text
      FROM ${s}.grants g LEFT JOIN draws d ON d.grant_id = g.id LEFT JOIN clawed c ON c.grant_id = g.id
      WHERE ($1::text IS NULL OR g.user_id = $1) AND g.amount - coalesce(d.drawn, 0) - coalesce(c.clawed, 0) <> g.remaining
    UNION ALL
    SELECT h.user_id, h.counter_key, 'hold_status', h.id,
           coalesce(CASE r.kinds WHEN 'commit' THEN 'committed' WHEN 'release' THEN 'released' WHEN 'expire' THEN 'expired' ELSE r.kinds END, 'open'),
           h.status
      FROM ${s}.holds h LEFT JOIN resolutions r ON r.hold_id = h.id
      WHERE ($1::text IS NULL OR h.user_id = $1)
        AND coalesce(CASE r.kinds WHEN 'commit' THEN 'committed' WHEN 'release' THEN 'released' WHEN 'expire' THEN 'expired' ELSE r.kinds END, 'open') <> h.status
    ORDER BY 1, 2, 3, 4`;
  const { rows } = await query<{ user_id: string; counter: string; field: string; subject: string; expected: string; actual: string }>(ctx.pool, sql, [user]);
  return rows.map((r) => ({ userId: r.user_id, counter: r.counter, field: r.field, subject: r.subject, expected: r.expected, actual: r.actual }));
}
