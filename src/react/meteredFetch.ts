import { errorFromBody, LimitReachedError } from "../core/errors.js";
import type { LimitReachedStore } from "./limitReachedStore.js";

/**
 * Wraps a fetch so that a 402 `limit_reached` answer opens the `LimitReachedDialog` of the
 * provider that owns `store`, and calls `onLimitReached`. The response is returned untouched
 * (its body still unread), so the wrapper drops in wherever a `fetch` is expected, e.g. the AI
 * SDK's `useChat({ fetch })`. In components prefer `useMeteredFetch`.
 */
export function withLimitReached(fetchImpl: typeof fetch, store?: LimitReachedStore, onLimitReached?: (error: LimitReachedError) => void): typeof fetch {
  return async (input, init) => {
    const res = await fetchImpl(input, init);
    if (res.status === 402) {
      const error = errorFromBody(await res.clone().json().catch(() => null), 402);
      if (error instanceof LimitReachedError) {
        store?.getState().open(error);
        onLimitReached?.(error);
      }
    }
    return res;
  };
}
