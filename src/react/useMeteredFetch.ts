import { useMemo, useRef } from "react";
import type { LimitReachedError } from "../core/errors.js";
import { useMeterContext } from "./context.js";
import { limitStoreOf } from "./limitReachedStore.js";
import { withLimitReached } from "./meteredFetch.js";
import { usageKey } from "./queryKeys.js";

export interface UseMeteredFetchOptions {
  /**
   * Called with the error of every 402 `limit_reached` answer, after the dialog was asked to
   * open. Default: none.
   */
  onLimitReached?: (error: LimitReachedError) => void;
}

/**
 * A `fetch` for the app's metered routes, made with the provider's `fetch`: a 402
 * `limit_reached` answer opens `LimitReachedDialog` and calls `onLimitReached`, and every answer
 * refreshes the balance when no live stream is connected to do it.
 */
export function useMeteredFetch({ onLimitReached }: UseMeteredFetchOptions = {}): typeof fetch {
  const ctx = useMeterContext("useMeteredFetch");
  const { own, queryClient, baseUrl, streaming } = ctx;
  const limitStore = limitStoreOf(ctx);
  // An inline callback must not make a new fetch on every render (it is often an effect dependency).
  const callback = useRef(onLimitReached);
  callback.current = onLimitReached;
  return useMemo(() => {
    // The provider's latest fetch (or the global one, looked up per call as tests and polyfills may replace it).
    const fetchImpl: typeof fetch = (input, init) => (own.props.fetch ?? fetch)(input, init);
    const limited = withLimitReached(fetchImpl, limitStore, (e) => callback.current?.(e));
    return async (input, init) => {
      const res = await limited(input, init);
      if (!streaming || res.status === 402) void queryClient.invalidateQueries({ queryKey: usageKey(baseUrl) });
      return res;
    };
  }, [own, queryClient, baseUrl, streaming, limitStore]);
}
