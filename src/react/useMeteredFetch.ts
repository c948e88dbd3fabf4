import { useMemo } from "react";
import { useMeterContext } from "./context.js";
import { withLimitReached } from "./meteredFetch.js";
import { usageKey } from "./queryKeys.js";

/**
 * A `fetch` for the app's metered routes, made with the provider's `fetch`: a 402
 * `limit_reached` answer opens `LimitReachedDialog`, and every answer refreshes the balance
 * when no live stream is connected to do it.
 */
export function useMeteredFetch(): typeof fetch {
  const ctx = useMeterContext("useMeteredFetch");
  const { fetch: fetchImpl, queryClient, baseUrl } = ctx;
  const streaming = ctx.streaming;
  return useMemo(() => {
    const limited = withLimitReached(fetchImpl);
    return async (input, init) => {
      const res = await limited(input, init);
      if (!streaming || res.status === 402) void queryClient.invalidateQueries({ queryKey: usageKey(baseUrl) });
      return res;
    };
  }, [fetchImpl, queryClient, baseUrl, streaming]);
}
