import { useStore } from "zustand";
import { useMeterContext } from "./context.js";
import { limitStoreOf, type LimitReachedState } from "./limitReachedStore.js";

const all = (s: LimitReachedState) => s;

/**
 * The provider's limit-reached state: `useLimitReached()` for all of it,
 * `useLimitReached((s) => s.open)` for a part (re-renders only when that part changes).
 */
export function useLimitReached(): LimitReachedState;
export function useLimitReached<T>(selector: (state: LimitReachedState) => T): T;
export function useLimitReached<T>(selector: (state: LimitReachedState) => T = all as (s: LimitReachedState) => T): T {
  return useStore(limitStoreOf(useMeterContext("useLimitReached")), selector);
}
