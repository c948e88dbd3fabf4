import type { CounterView } from "./counterView.js";
import { useUsageFor, type UseUsageOptions, type UseUsageResult } from "./useUsage.js";

export type UseCounterOptions = UseUsageOptions;

export interface UseCounterResult extends Omit<UseUsageResult, "counters"> {
  /** The counter, or `undefined` while loading or when the user's plan has no such counter. */
  counter: CounterView | undefined;
}

/**
 * One counter of the user's usage, by key (`"tokens"`, `"credits"`). Without a key: the plan's
 * first counter.
 */
export function useCounter(key?: string, options: UseCounterOptions = {}): UseCounterResult {
  const { counters, ...rest } = useUsageFor("useCounter", options);
  return { ...rest, counter: counters.find((c) => key == null || c.key == key) };
}
