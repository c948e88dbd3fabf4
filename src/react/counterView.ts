import type { CounterUsage } from "../core/types.js";

/** How much of a counter is left: `empty` at 0, `low` at or below the low threshold, else `normal`. */
export type CounterLevel = "normal" | "low" | "empty";

/** One counter as the UI needs it: the wire fields plus what is derived from them. */
export interface CounterView extends Omit<CounterUsage, "periodStart" | "periodEnd"> {
  /** `quota + granted`: everything available this period. */
  total: number;
  /** `(used + held) / total`, between 0 and 1 (1 when `total` is 0). */
  fractionUsed: number;
  level: CounterLevel;
  periodStart: Date | null;
  /** When the allowance renews; `null` for a counter that never renews. */
  periodEnd: Date | null;
}

/** Default share of `total` at or below which a counter counts as low. */
export const DEFAULT_LOW_THRESHOLD = 0.1;

export function toCounterView(c: CounterUsage, lowThreshold = DEFAULT_LOW_THRESHOLD): CounterView {
  const total = (c.quota ?? 0) + c.granted;
  return {
    ...c,
    total,
    fractionUsed: total > 0 ? Math.min(1, (c.used + c.held) / total) : 1,
    level: (c.remaining ?? 0) <= 0 ? "empty" : (c.remaining ?? 0) <= total * lowThreshold ? "low" : "normal",
    periodStart: c.periodStart ? new Date(c.periodStart) : null,
    periodEnd: c.periodEnd ? new Date(c.periodEnd) : null,
  };
}
