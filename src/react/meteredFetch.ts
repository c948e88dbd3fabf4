import { errorFromBody, LimitReachedError } from "../core/errors.js";
import { useLimitReached } from "./useLimitReached.js";

/**
 * Wraps a fetch so that a 402 `limit_reached` answer opens `LimitReachedDialog`. The response
 * is returned untouched (its body still unread), so the wrapper drops in wherever a `fetch` is
 * expected, e.g. the AI SDK's `useChat({ fetch })`.
 */
export function withLimitReached(fetchImpl: typeof fetch, onLimitReached?: (error: LimitReachedError) => void): typeof fetch {
  return async (input, init) => {
    const res = await fetchImpl(input, init);
    if (res.status === 402) {
      const error = errorFromBody(await res.clone().json().catch(() => null), 402);
      if (error instanceof LimitReachedError) {
        useLimitReached.getState().open(error);
        onLimitReached?.(error);
      }
    }
    return res;
  };
}

/**
 * `fetch` for the app's metered routes (a chat endpoint, say): same arguments and result, and a
 * 402 `limit_reached` answer opens `LimitReachedDialog`. Outside React; in components prefer
 * `useMeteredFetch`, which also refreshes the balance.
 */
export const meteredFetch: typeof fetch = (input, init) => withLimitReached(fetch)(input, init);
