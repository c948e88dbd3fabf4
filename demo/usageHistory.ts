import type { Meter } from "../src/server/index.js";

/*
 * Reads for the usage view. meterkit's public API answers "what is my balance" (`usage()`);
 * the history behind it lives in the append-only `entries` table of the meter's schema, which
 * the demo reads directly (read-only, one indexed query each).
 */

/** Entry kinds that change usage; their amounts add up to the net tokens charged. */
const USAGE_KINDS = ["commit", "track", "refund", "adjust"];

/** One ledger entry as the usage view shows it. */
export interface HistoryEntry {
  id: string;
  kind: "reserve" | "commit" | "release" | "expire" | "track" | "refund" | "grant" | "adjust" | "clawback";
  /** In tokens. For a commit: what was charged; for a reserve: what was held. */
  amount: number;
  at: string;
  model: string | null;
  holdId: string | null;
  /** Commit: what the hold was and what went back. */
  held?: number;
  refunded?: number;
  /** Reserve: the prompt's tokens and the reply limit that made the hold. */
  inputTokens?: number;
  maxOutputTokens?: number;
  /** Grant: where it came from (`stripe`, `promo`, …). */
  source?: string;
}

/** Net tokens charged on one UTC day. */
export interface DailyUsage {
  /** `YYYY-MM-DD`, UTC (the ledger's periods are UTC too). */
  day: string;
  tokens: number;
  /** Model calls charged that day. */
  requests: number;
}

export interface UsageHistory {
  entries: HistoryEntry[];
  days: DailyUsage[];
}

interface EntryRow {
  id: string;
  kind: HistoryEntry["kind"];
  amount: string;
  created_at: Date;
  model: string | null;
  hold_id: string | null;
  metadata: Record<string, unknown> | null;
}

/** The user's most recent entries (newest first) and their usage per day over the last `days` days. */
export async function readUsageHistory(meter: Meter, userId: string, options: { limit?: number; days?: number } = {}): Promise<UsageHistory> {
  const { pool, schema } = meter.internals;
  const limit = options.limit ?? 40;
  const days = options.days ?? 14;
  const [entries, daily] = await Promise.all([
    pool.query<EntryRow>(
      `SELECT e.id, e.kind, e.amount, e.created_at, e.model, e.hold_id, coalesce(e.metadata, h.metadata) AS metadata
         FROM ${schema}.entries e
         LEFT JOIN ${schema}.holds h ON e.kind = 'reserve' AND h.id = e.hold_id
        WHERE e.user_id = $1
        ORDER BY e.id DESC
        LIMIT $2`,
      [userId, limit],
    ),
    pool.query<{ day: string; tokens: string; requests: string }>(
      `SELECT to_char(d, 'YYYY-MM-DD') AS day,
              coalesce(sum(e.amount), 0) AS tokens,
              count(e.id) FILTER (WHERE e.kind IN ('commit', 'track')) AS requests
         FROM generate_series(date_trunc('day', now() AT TIME ZONE 'UTC') - make_interval(days => $2 - 1),
                              date_trunc('day', now() AT TIME ZONE 'UTC'), interval '1 day') AS d
         LEFT JOIN ${schema}.entries e
           ON e.user_id = $1 AND e.kind = ANY($3)
          AND e.created_at >= d AT TIME ZONE 'UTC' AND e.created_at < (d + interval '1 day') AT TIME ZONE 'UTC'
        GROUP BY d
        ORDER BY d`,
      [userId, days, USAGE_KINDS],
    ),
  ]);
  return {
    entries: entries.rows.map(toEntry),
    days: daily.rows.map((r) => ({ day: r.day, tokens: Number(r.tokens), requests: Number(r.requests) })),
  };
}

function toEntry(r: EntryRow): HistoryEntry {
  const m = r.metadata ?? {};
  const num = (v: unknown) => (typeof v === "number" ? v : undefined);
  const entry: HistoryEntry = {
    id: String(r.id),
    kind: r.kind,
    amount: Number(r.amount),
    at: r.created_at.toISOString(),
    model: r.model,
    holdId: r.hold_id,
  };
  if (r.kind === "commit") Object.assign(entry, { held: num(m.held), refunded: num(m.refunded) });
  if (r.kind === "reserve") Object.assign(entry, { inputTokens: num(m.inputTokens), maxOutputTokens: num(m.maxOutputTokens) });
  if (r.kind === "grant" && typeof m.source === "string") entry.source = m.source;
  return entry;
}

/** How one hold ended, for the chat page after a Stop (the stream is gone, the ledger knows). */
export interface HoldOutcome {
  status: "open" | "committed" | "released" | "expired";
  held: number;
  charged: number;
  refunded: number;
  inputTokens: number | null;
}

/** The outcome of the user's hold `holdId`, or null when there is no such hold of theirs. */
export async function readHoldOutcome(meter: Meter, userId: string, holdId: string): Promise<HoldOutcome | null> {
  const { pool, schema } = meter.internals;
  const { rows } = await pool.query<{ status: HoldOutcome["status"]; amount: string; result: Record<string, unknown> | null; metadata: Record<string, unknown> | null }>(
    `SELECT status, amount, result, metadata FROM ${schema}.holds WHERE id = $1 AND user_id = $2`,
    [holdId, userId],
  );
  const row = rows[0];
  if (!row) return null;
  const result = row.result ?? {};
  const input = row.metadata?.inputTokens;
  return {
    status: row.status,
    held: Number(row.amount),
    charged: typeof result.committed === "number" ? result.committed : 0,
    refunded: typeof result.refunded === "number" ? result.refunded : row.status === "released" ? Number(row.amount) : 0,
    inputTokens: typeof input === "number" ? input : null,
  };
}
