import { useMeterContext } from "./context.js";
import type { CounterView } from "./counterView.js";
import { useUsageFor, type UseUsageOptions, type UseUsageResult } from "./useUsage.js";

export type UseCounterOptions = UseUsageOptions;

/**
 * `useUsage`'s result with one `counter` instead of `counters`; narrows on `status` the same way.
 * `counter` is `undefined` while loading, on error, or when the user's plan has no such counter.
 */
export type UseCounterResult = UseUsageResult extends infer R
  ? R extends UseUsageResult
    ? Omit<R, "counters"> & { counter: CounterView | undefined }
    : never
  : never;

/**
 * One counter of the user's usage, by key (`"tokens"`, `"credits"`). Without a key: the plan's
 * first counter.
 */
export function useCounter(key?: string, options: UseCounterOptions = {}): UseCounterResult {
  const { counters, ...rest } = useUsageFor(useMeterContext("useCounter"), options);
  return { ...rest, counter: (counters as CounterView[]).find((c) => key == null || c.key == key) } as UseCounterResult;
}
