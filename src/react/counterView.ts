import type { CounterUsage, Usage } from "../core/types.js";

/**
 * A counter as the kit reads it off the wire: `quota` and `remaining` are `null` for an
 * unlimited counter (the ledger's contract). Written as its own type so the kit accepts both
 * the limited-only and the nullable form of core's `CounterUsage`.
 */
export type WireCounterUsage = Omit<CounterUsage, "quota" | "remaining"> & { quota: number | null; remaining: number | null };
/** `Usage` whose counters may be unlimited. */
export type WireUsage = Omit<Usage, "counters"> & { counters: WireCounterUsage[] };

/**
 * How much of a counter is left: `empty` at 0, `low` at or below the low threshold, `unlimited`
 * without a quota, else `ok`.
 */
export type CounterLevel = "ok" | "low" | "empty" | "unlimited";

/** One counter as the UI needs it: the wire fields plus what is derived from them. */
export type CounterView = Omit<WireCounterUsage, "periodStart" | "periodEnd" | "quota" | "remaining"> & {
  periodStart: Date | null;
  /** When the allowance renews; `null` for a counter that never renews. */
  periodEnd: Date | null;
} & (
    | {
        unlimited: false;
        quota: number;
        remaining: number;
        /** `quota + granted`: everything available this period. */
        total: number;
        /** `(used + held) / total`, between 0 and 1 (1 when `total` is 0). */
        fractionUsed: number;
        level: "ok" | "low" | "empty";
      }
    | { unlimited: true; quota: null; remaining: null; total: null; fractionUsed: 0; level: "unlimited" }
  );

/** Default share of `total` at or below which a counter counts as low. */
export const DEFAULT_LOW_THRESHOLD = 0.1;

export function toCounterView(c: WireCounterUsage, lowThreshold = DEFAULT_LOW_THRESHOLD): CounterView {
  const { quota, remaining: left, periodStart, periodEnd } = c;
  const unlimited = quota === null || left === null;
  const total = unlimited ? null : quota + c.granted;
  return {
    ...c,
    periodStart: periodStart ? new Date(periodStart) : null,
    periodEnd: periodEnd ? new Date(periodEnd) : null,
    unlimited,
    total,
    fractionUsed: unlimited ? 0 : total! > 0 ? Math.min(1, (c.used + c.held) / total!) : 1,
    level: unlimited ? "unlimited" : left <= 0 ? "empty" : left <= total! * lowThreshold ? "low" : "ok",
  } as CounterView;
}
