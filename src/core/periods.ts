import type { Anchor, Period } from "./types.js";

/** The bounds of one period, in UTC. `end` is exclusive; both are null for `period: "none"`. */
export interface PeriodBounds {
  start: Date | null;
  end: Date | null;
}

const DAY = 86_400_000;
const HOUR = 3_600_000;
const MINUTE = 60_000;
/** Fixed-length periods: their length in ms. */
const FIXED: Partial<Record<Period, number>> = { week: 7 * DAY, day: DAY, hour: HOUR, minute: MINUTE };

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
}

/** The anchor day `day` of month (year, month), clamped to the month's last day, at the anchor's time of day. */
function monthAnchor(year: number, month: number, anchor: Date): Date {
  const y = year + Math.floor(month / 12);
  const m = ((month % 12) + 12) % 12;
  const day = Math.min(anchor.getUTCDate(), daysInMonth(y, m));
  return new Date(Date.UTC(y, m, day, anchor.getUTCHours(), anchor.getUTCMinutes(), anchor.getUTCSeconds(), anchor.getUTCMilliseconds()));
}

/**
 * The period containing `now`. The same rules run in SQL (`period_bounds` in the migrations);
 * the tests check that both agree.
 *
 * - `calendar`: UTC months, ISO weeks (Monday), UTC days, hours and minutes (from the top of
 *   the hour / minute).
 * - `subscription_start`: months renew on the start's day of month, clamped to shorter months
 *   (a Jan 31 start renews Feb 28/29, then Mar 31); weeks, days, hours and minutes every
 *   7 days / 24 h / 60 min / 60 s from the start.
 */
export function periodBounds(now: Date, period: Period, anchor: Anchor, startedAt: Date): PeriodBounds {
  if (period === "none") return { start: null, end: null };
  const t = now.getTime();
  if (anchor === "calendar") {
    if (period === "day" || period === "hour" || period === "minute") {
      // Unix time has no leap seconds, so UTC days, hours and minutes are multiples from 1970.
      const len = FIXED[period]!;
      const s = Math.floor(t / len) * len;
      return { start: new Date(s), end: new Date(s + len) };
    }
    if (period === "week") {
      // 1970-01-01 was a Thursday; ISO weeks start on Monday (1970-01-05 minus 7 days).
      const monday = Date.UTC(1969, 11, 29);
      const s = monday + Math.floor((t - monday) / (7 * DAY)) * 7 * DAY;
      return { start: new Date(s), end: new Date(s + 7 * DAY) };
    }
    const y = now.getUTCFullYear();
    const m = now.getUTCMonth();
    return { start: new Date(Date.UTC(y, m, 1)), end: new Date(Date.UTC(y, m + 1, 1)) };
  }
  const a = startedAt.getTime();
  const len = FIXED[period];
  if (len !== undefined) {
    const k = Math.floor((t - a) / len);
    return { start: new Date(a + k * len), end: new Date(a + (k + 1) * len) };
  }
  // Months since the anchor, then step back if the clamped anchor of this month is still ahead.
  let k = (now.getUTCFullYear() - startedAt.getUTCFullYear()) * 12 + (now.getUTCMonth() - startedAt.getUTCMonth());
  let start = monthAnchor(startedAt.getUTCFullYear(), startedAt.getUTCMonth() + k, startedAt);
  if (start.getTime() > t) {
    k -= 1;
    start = monthAnchor(startedAt.getUTCFullYear(), startedAt.getUTCMonth() + k, startedAt);
  }
  const end = monthAnchor(startedAt.getUTCFullYear(), startedAt.getUTCMonth() + k + 1, startedAt);
  return { start, end };
}
