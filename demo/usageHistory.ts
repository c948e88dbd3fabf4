import type { LedgerEntry, Meter } from "../src/server/index.js";

/*
 * Reads for the usage view, through the meter's history API (`meter.entries`,
 * `meter.usageByDay`): the append-only ledger entries behind the balance.
 */

/** One ledger entry as the usage view shows it. */
export interface HistoryEntry {
  id: string;
  kind: LedgerEntry["kind"];
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

/** The user's most recent entries (newest first) and their usage per day over the last `days` days. */
export async function readUsageHistory(meter: Meter, userId: string, options: { limit?: number; days?: number } = {}): Promise<UsageHistory> {
  const [entries, days] = await Promise.all([
    meter.entries(userId, { limit: options.limit ?? 40 }),
    meter.usageByDay(userId, { days: options.days ?? 14 }),
  ]);
  return {
    entries: entries.map(toEntry),
    days: days.map((d) => ({ day: d.day, tokens: d.used, requests: d.charges })),
  };
}

function toEntry(e: LedgerEntry): HistoryEntry {
  const m = e.metadata ?? {};
  const num = (v: unknown) => (typeof v === "number" ? v : undefined);
  const entry: HistoryEntry = { id: e.id, kind: e.kind, amount: e.amount, at: e.at, model: e.model, holdId: e.reservationId };
  if (e.kind === "commit") Object.assign(entry, { held: num(m.held), refunded: num(m.refunded) });
  if (e.kind === "reserve") Object.assign(entry, { inputTokens: num(m.inputTokens), maxOutputTokens: num(m.maxOutputTokens) });
  if (e.kind === "grant" && typeof m.source === "string") entry.source = m.source;
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
  const hold = await meter.reservation(holdId);
  // Another user's hold is as good as none: the id came from the browser.
  if (!hold || hold.userId !== userId) return null;
  const input = hold.metadata?.inputTokens;
  return {
    status: hold.status,
    held: hold.held,
    charged: hold.committed,
    refunded: hold.refunded,
    inputTokens: typeof input === "number" ? input : null,
  };
}
