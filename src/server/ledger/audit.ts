import { query } from "../db.js";
import { optionalId } from "../validate.js";
import type { LedgerContext } from "./context.js";

/** One place where the balance rows disagree with what the entries say. */
export interface AuditDifference {
  userId: string;
  counter: string;
  /**
   * What disagrees: `used`, `used_from_grants`, `grant_remaining`, `hold_status`,
   * `hold_refunded` (refunds naming a hold vs its projection), `refund_beyond_hold` (refunds
   * naming a hold exceed what it committed), `debt_remaining` (a debt's balance vs its
   * settlements), `debt_collected_twice` (settlements of a debt exceed the debt).
   */
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
  // One user: `col = $1` in every part, so each reads that user's rows alone (one partition or
  // shard when the tables are distributed by user); no `$1 IS NULL OR …`, which a generic plan
  // cannot prune.
  const who = (col: string) => (user === null ? "TRUE" : `${col} = $1`);
  const sql = `
    WITH usage AS (
      SELECT user_id, counter_key, period_start, sum(amount) AS used,
             coalesce(sum((SELECT sum((d->>'amount')::bigint) FROM jsonb_array_elements(from_grants) d)), 0) AS ufg
      FROM ${s}.entries
      WHERE kind IN ('commit', 'track', 'refund', 'adjust') AND ${who("user_id")}
      GROUP BY 1, 2, 3
    ), bal AS (
      SELECT coalesce(b.user_id, u.user_id) AS user_id, coalesce(b.counter_key, u.counter_key) AS counter_key,
             coalesce(b.period_start, u.period_start) AS period_start,
             coalesce(u.used, 0) AS e_used, coalesce(b.used, 0) AS a_used,
             coalesce(u.ufg, 0) AS e_ufg, coalesce(b.used_from_grants, 0) AS a_ufg
      FROM (SELECT * FROM ${s}.balances WHERE ${who("user_id")}) b
      FULL JOIN usage u USING (user_id, counter_key, period_start)
    ), draws AS (
      SELECT d->>'grantId' AS grant_id, sum((d->>'amount')::bigint) AS drawn
      FROM ${s}.entries e, jsonb_array_elements(e.from_grants) d
      WHERE e.from_grants IS NOT NULL AND ${who("e.user_id")}
      GROUP BY 1
    ), clawed AS (
      -- Credits taken from a grant other than by spending: clawbacks and debt settlements.
      SELECT grant_id, sum(amount) AS clawed FROM ${s}.entries
      WHERE kind IN ('clawback', 'settle') AND grant_id IS NOT NULL AND ${who("user_id")} GROUP BY 1
    ), resolutions AS (
      SELECT hold_id, string_agg(kind, ',' ORDER BY id) AS kinds
      FROM ${s}.entries WHERE kind IN ('commit', 'release', 'expire') AND hold_id IS NOT NULL
        AND ${who("user_id")}
      GROUP BY 1
    ), hold_refunds AS (
      SELECT hold_id, -sum(amount) AS refunded FROM ${s}.entries
      WHERE kind = 'refund' AND hold_id IS NOT NULL AND ${who("user_id")} GROUP BY 1
    ), settled AS (
      SELECT metadata->>'debtId' AS debt_id, sum(amount) AS settled FROM ${s}.entries
      WHERE kind = 'settle' AND ${who("user_id")} GROUP BY 1
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
      WHERE ${who("g.user_id")} AND g.amount - coalesce(d.drawn, 0) - coalesce(c.clawed, 0) <> g.remaining
    UNION ALL
    SELECT h.user_id, h.counter_key, 'hold_status', h.id,
           coalesce(CASE r.kinds WHEN 'commit' THEN 'committed' WHEN 'release' THEN 'released' WHEN 'expire' THEN 'expired' ELSE r.kinds END, 'open'),
           h.status
      FROM ${s}.holds h LEFT JOIN resolutions r ON r.hold_id = h.id
      WHERE ${who("h.user_id")}
        AND coalesce(CASE r.kinds WHEN 'commit' THEN 'committed' WHEN 'release' THEN 'released' WHEN 'expire' THEN 'expired' ELSE r.kinds END, 'open') <> h.status
    UNION ALL
    SELECT h.user_id, h.counter_key, 'hold_refunded', h.id, coalesce(hr.refunded, 0)::text, h.refunded::text
      FROM ${s}.holds h LEFT JOIN hold_refunds hr ON hr.hold_id = h.id
      WHERE ${who("h.user_id")} AND coalesce(hr.refunded, 0) <> h.refunded
    UNION ALL
    -- A refund that names a hold gives back at most what the hold committed.
    SELECT h.user_id, h.counter_key, 'refund_beyond_hold', h.id,
           coalesce((h.result->>'committed')::bigint, 0)::text, hr.refunded::text
      FROM ${s}.holds h JOIN hold_refunds hr ON hr.hold_id = h.id
      WHERE ${who("h.user_id")} AND hr.refunded > coalesce((h.result->>'committed')::bigint, 0)
    UNION ALL
    SELECT d.user_id, d.counter_key, 'debt_remaining', d.id, (d.amount - coalesce(st.settled, 0))::text, d.remaining::text
      FROM ${s}.debts d LEFT JOIN settled st ON st.debt_id = d.id
      WHERE ${who("d.user_id")} AND d.amount - coalesce(st.settled, 0) <> d.remaining
    UNION ALL
    -- Exactly once: what settlements collected for a debt never exceeds the debt.
    SELECT d.user_id, d.counter_key, 'debt_collected_twice', d.id, d.amount::text, st.settled::text
      FROM ${s}.debts d JOIN settled st ON st.debt_id = d.id
      WHERE ${who("d.user_id")} AND st.settled > d.amount
    ORDER BY 1, 2, 3, 4`;
  const { rows } = await query<{ user_id: string; counter: string; field: string; subject: string; expected: string; actual: string }>(ctx.pool, sql, user === null ? [] : [user]);
  return rows.map((r) => ({ userId: r.user_id, counter: r.counter, field: r.field, subject: r.subject, expected: r.expected, actual: r.actual }));
}
