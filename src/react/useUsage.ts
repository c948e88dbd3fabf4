import { useQuery, type QueryClient } from "@tanstack/react-query";
import type { Usage } from "../core/types.js";
import { useMeterContext } from "./context.js";
import { toCounterView, type CounterView } from "./counterView.js";
import { usageKey } from "./queryKeys.js";
import { newerUsage } from "./writeUsage.js";

export interface UseUsageOptions {
  /** Use this QueryClient instead of the provider's. Default: the provider's. */
  queryClient?: QueryClient;
  /** Share of a counter's total at or below which it is `low`. Default `0.1`. */
  lowThreshold?: number;
}

export interface UseUsageResult {
  /** The user's usage as the server sent it; `undefined` until loaded. */
  usage: Usage | undefined;
  /** Every counter with derived fields (`fractionUsed`, `level`, dates); empty until loaded. */
  counters: CounterView[];
  /** `"pending"` until the first answer, `"error"` when the last fetch failed and there is no data. */
  status: "pending" | "error" | "success";
  /** True until the first answer. */
  isLoading: boolean;
  /** The last error (a `MeterError` for an error answer), or `null`. */
  error: Error | null;
  /** True while the live stream is connected. */
  isLive: boolean;
  /** Fetches `GET /usage` now. */
  refetch: () => Promise<unknown>;
}

/** The signed-in user's balances, kept fresh by the provider's live mode. */
export function useUsage(options: UseUsageOptions = {}): UseUsageResult {
  return useUsageFor("useUsage", options);
}

export function useUsageFor(caller: string, { queryClient, lowThreshold }: UseUsageOptions): UseUsageResult {
  const ctx = useMeterContext(caller);
  const client = queryClient ?? ctx.queryClient;
  const key = usageKey(ctx.baseUrl);
  // "poll" never streams; "sse" polls only while its stream is down.
  const polling = ctx.live && !ctx.streaming;
  const query = useQuery(
    {
      queryKey: key,
      queryFn: async () => newerUsage(client.getQueryData<Usage>(key), await ctx.request<Usage>("/usage")),
      refetchInterval: polling ? ctx.pollInterval : false,
      // A connected stream already pushes every change; refetching on focus would only add load.
      staleTime: ctx.streaming ? Infinity : 0,
    },
    client,
  );
  const usage = query.data;
  return {
    usage,
    counters: usage ? usage.counters.map((c) => toCounterView(c, lowThreshold)) : [],
    status: usage ? "success" : query.status,
    isLoading: query.isPending,
    error: query.error,
    isLive: ctx.streaming,
    refetch: query.refetch,
  };
}
