import { useQuery, type QueryClient } from "@tanstack/react-query";
import { useMeterContext } from "./context.js";
import { historyKey } from "./queryKeys.js";
import { request } from "./request.js";

/** Usage charged on one UTC day, per counter. */
export interface UsageDay {
  /** `YYYY-MM-DD`, UTC (the ledger's periods are UTC too). */
  date: string;
  /** Net amount charged that day, by counter key, in the counter's unit. */
  counters: Record<string, number>;
}

/** `GET /usage/history`: every day of the range, oldest first, zeros included. */
export interface UsageHistoryData {
  days: UsageDay[];
}

export interface UseUsageHistoryOptions {
  /** How many UTC days back, today included. Default `14` (the server allows 1–366). */
  days?: number;
  /** Fetch only when true. Default `true`. */
  enabled?: boolean;
  /** Use this QueryClient instead of the provider's. */
  queryClient?: QueryClient;
}

/** The signed-in user's usage per day (`GET /usage/history?days=`), a TanStack query. */
export function useUsageHistory({ days = 14, enabled = true, queryClient }: UseUsageHistoryOptions = {}) {
  const ctx = useMeterContext("useUsageHistory");
  return useQuery(
    {
      queryKey: [...historyKey(ctx.baseUrl), days],
      queryFn: () => request<UsageHistoryData>(ctx, `/usage/history?days=${days}`),
      enabled,
    },
    queryClient ?? ctx.queryClient,
  );
}
