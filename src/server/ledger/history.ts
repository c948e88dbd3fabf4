import { assertAmount, assertId } from "../../core/amounts.js";
import { query } from "../db.js";
import { optionalId, optionsObject } from "../validate.js";
import type { LedgerContext } from "./context.js";

/** The kinds of entry the ledger appends. */
export type EntryKind = "reserve" | "commit" | "release" | "expire" | "track" | "refund" | "grant" | "adjust" | "clawback" | "debt" | "settle";

/** One append-only ledger entry, as `meter.entries()` returns it. */
export interface LedgerEntry {
  /** Increasing with time; pass the last one as `before` to page back. */
  id: string;
  kind: EntryKind;
  counter: string;
  /**
   * In the counter's unit. Usage kinds (`commit`, `track`, `refund`, `adjust`) add up to what
   * was charged (a refund is negative); `reserve` / `release` / `expire` are hold amounts;
   * `grant` and `clawback` are credits added and taken back; `debt` is what a refunded pack's
   * spent part left owing, and `settle` the credits of a grant that paid it.
   */
  amount: number;
  /** ISO time, by the database clock. */
  at: string;
  reservationId: string | null;
  grantId: string | null;
  meterKey: string | null;
  model: string | null;
  /** What the entry carries: a commit's `held` / `refunded` / `overage`, a grant's `source`, the metadata of the call. */
  metadata: Record<string, unknown> | null;
}

export interface EntriesOptions {
  /** How many, newest first. Default 50, at most 1000. */
  limit?: number;
  /** Only entries older than this entry id (paging). */
  before?: string;
  /** Only this counter. Default: all. */
  counter?: string;
}

/** A user's most recent ledger entries, newest first, from the (user_id, id) index. */
export async function entries(ctx: LedgerContext, userId: string, options?: EntriesOptions): Promise<LedgerEntry[]> {
  const user = assertId(userId, "userId");
  const o = optionsObject(options, "options");
  const limit = o.limit === undefined ? 50 : Math.min(assertAmount(o.limit, "limit"), 1000);
  const before = o.before === undefined ? null : String(assertAmount(Number(o.before), "before"));
  const counter = optionalId(o.counter, "counter");
  await ctx.ready();
  const { rows } = await query<{
    id: string; kind: EntryKind; counter_key: string; amount: string; created_at: Date; hold_id: string | null;
    grant_id: string | null; meter_key: string | null; model: string | null; metadata: Record<string, unknown> | null;
  }>(
    ctx.pool,
    `SELECT e.id, e.kind, e.counter_key, e.amount, e.created_at, e.hold_id, e.grant_id, e.meter_key, e.model,
            coalesce(e.metadata, h.metadata) AS metadata
       FROM ${ctx.schema}.entries e
       LEFT JOIN ${ctx.schema}.holds h ON e.kind = 'reserve' AND h.user_id = e.user_id AND h.id = e.hold_id
      WHERE e.user_id = $1 AND ($2::bigint IS NULL OR e.id < $2) AND ($3::text IS NULL OR e.counter_key = $3)
      ORDER BY e.id DESC
      LIMIT $4`,
    [user, before, counter, limit],
  );
  return rows.map((r) => ({
    id: r.id,
    kind: r.kind,
    counter: r.counter_key,
    amount: Number(r.amount),
    at: r.created_at.toISOString(),
    reservationId: r.hold_id,
    grantId: r.grant_id,
    meterKey: r.meter_key,
    model: r.model,
    metadata: r.metadata,
  }));
}

export interface UsageByDayOptions {
  /** How many UTC days back, today included. Default 30, at most 366. */
  days?: number;
  /** Only this counter. Default: all, summed (mixing units: pass a counter when they differ). */
  counter?: string;
}

/** Net usage charged on one UTC day. */
export interface DailyUsage {
  /** `YYYY-MM-DD` (UTC, like the ledger's periods). */
  day: string;
  /** Net amount charged (commits + tracks + adjustments − refunds). */
  used: number;
  /** Charges that day (commits and tracks). */
  charges: number;
}

/** Usage per UTC day over the last `days` days (every day listed, zeros included), oldest first. */
export async function usageByDay(ctx: LedgerContext, userId: string, options?: UsageByDayOptions): Promise<DailyUsage[]> {
  const user = assertId(userId, "userId");
  const o = optionsObject(options, "options");
  const days = o.days === undefined ? 30 : Math.min(assertAmount(o.days, "days"), 366);
  const counter = optionalId(o.counter, "counter");
  await ctx.ready();
  const { rows } = await query<{ day: string; used: string; charges: string }>(
    ctx.pool,
    `SELECT to_char(d, 'YYYY-MM-DD') AS day, coalesce(sum(e.amount), 0) AS used,
            count(e.id) FILTER (WHERE e.kind IN ('commit', 'track')) AS charges
       FROM generate_series(date_trunc('day', ${ctx.schema}.clock() AT TIME ZONE 'UTC') - make_interval(days => $2 - 1),
                            date_trunc('day', ${ctx.schema}.clock() AT TIME ZONE 'UTC'), interval '1 day') AS d
       LEFT JOIN ${ctx.schema}.entries e
         ON e.user_id = $1 AND e.kind IN ('commit', 'track', 'refund', 'adjust')
        AND ($3::text IS NULL OR e.counter_key = $3)
        AND e.created_at >= d AT TIME ZONE 'UTC' AND e.created_at < (d + interval '1 day') AT TIME ZONE 'UTC'
      GROUP BY d ORDER BY d`,
    [user, days, counter],
  );
  return rows.map((r) => ({ day: r.day, used: Number(r.used), charges: Number(r.charges) }));
}
