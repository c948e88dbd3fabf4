import { useQuery, useSuspenseQuery, type QueryClient, type UseQueryOptions, type UseQueryResult } from "@tanstack/react-query";
import type { Usage } from "../core/types.js";
import { useMeterContext, type MeterContextValue } from "./context.js";
import { toCounterView, type CounterView } from "./counterView.js";
import { usageKey } from "./queryKeys.js";
import { newerUsage } from "./writeUsage.js";
import { request } from "./request.js";

/** TanStack Query options passed through to the usage query (all but its key, function and `select`). */
export type UsageQueryOptions = Omit<UseQueryOptions<Usage, Error, Usage>, "queryKey" | "queryFn" | "select">;

export interface UseUsageOptions {
  /** Use this QueryClient instead of the provider's. Default: the provider's. */
  queryClient?: QueryClient;
  /** Share of a counter's total at or below which it is `low`. Default `0.1`. */
  lowThreshold?: number;
  /**
   * Passed through to `useQuery` (`enabled`, `refetchInterval`, `staleTime`, `retry`, …); they
   * override the kit's own choices. Default: none.
   */
  queryOptions?: UsageQueryOptions;
}

interface UsageResultBase {
  /** True while the live stream is connected. */
  isLive: boolean;
  /** True while any fetch of `GET /usage` is in flight. */
  isFetching: boolean;
  /** Fetches `GET /usage` now. */
  refetch: () => Promise<unknown>;
}

/** Before the first answer. */
export interface UsagePendingResult extends UsageResultBase {
  status: "pending";
  isPending: true;
  isSuccess: false;
  isError: false;
  /** Alias of `isPending`. */
  isLoading: true;
  usage: undefined;
  counters: [];
  error: null;
}

/** The first fetch failed and nothing is cached. */
export interface UsageErrorResult extends UsageResultBase {
  status: "error";
  isPending: false;
  isSuccess: false;
  isError: true;
  isLoading: false;
  usage: undefined;
  counters: [];
  /** A `MeterRequestError` for an error answer (narrow with `isMeterError`), else the fetch's error. */
  error: Error;
}

/** Usage is loaded (a later refetch may have failed: then `error` says why, and the data stays). */
export interface UsageSuccessResult extends UsageResultBase {
  status: "success";
  isPending: false;
  isSuccess: true;
  isError: false;
  isLoading: false;
  /** The user's usage as the server sent it. */
  usage: Usage;
  /** Every counter with derived fields (`fractionUsed`, `level`, dates). */
  counters: CounterView[];
  /** The last refetch's error, or `null`. */
  error: Error | null;
}

/** What `useUsage` returns: narrows on `status` (or `isSuccess`, `isError`, `isPending`). */
export type UseUsageResult = UsagePendingResult | UsageErrorResult | UsageSuccessResult;

/** The signed-in user's balances, kept fresh by the provider's live mode. */
export function useUsage(options: UseUsageOptions = {}): UseUsageResult {
  return useUsageFor(useMeterContext("useUsage"), options);
}

/** What the usage query is, for `useQuery` and `useSuspenseQuery` alike. */
function usageQuery(ctx: MeterContextValue, client: QueryClient) {
  const key = usageKey(ctx.baseUrl);
  // "poll" never streams; "sse" polls only while its stream is down.
  const polling = ctx.live && !ctx.streaming;
  return {
    queryKey: key,
    queryFn: async () => newerUsage(client.getQueryData<Usage>(key), await request<Usage>(ctx, "/usage")),
    refetchInterval: polling ? ctx.pollInterval : (false as const),
    // A connected stream already pushes every change; refetching on focus would only add load.
    staleTime: ctx.streaming ? Infinity : 0,
  };
}

/** `useUsage` over a provider value the caller already has (it named itself when it got it). */
export function useUsageFor(ctx: MeterContextValue, { queryClient, lowThreshold, queryOptions }: UseUsageOptions): UseUsageResult {
  const client = queryClient ?? ctx.queryClient;
  const query = useQuery({ ...usageQuery(ctx, client), ...queryOptions }, client);
  return result(query, ctx.streaming, lowThreshold);
}

/** The union from TanStack's result: `success` whenever data is cached, even after a failed refetch. */
function result(query: Pick<UseQueryResult<Usage | undefined>, "data" | "status" | "error" | "isFetching" | "refetch">, isLive: boolean, lowThreshold: number | undefined): UseUsageResult {
  const usage = query.data;
  const status = usage ? "success" : query.status;
  return {
    status,
    isPending: status == "pending",
    isLoading: status == "pending",
    isSuccess: status == "success",
    isError: status == "error",
    usage,
    counters: usage ? usage.counters.map((c) => toCounterView(c, lowThreshold)) : [],
    error: query.error,
    isLive,
    isFetching: query.isFetching,
    refetch: query.refetch,
  } as UseUsageResult;
}

/**
 * `useUsage` for React Suspense: suspends until the first answer (an error goes to the nearest
 * error boundary), then always returns loaded usage.
 */
export function useSuspenseUsage(options: Omit<UseUsageOptions, "queryOptions"> = {}): UsageSuccessResult {
  const ctx = useMeterContext("useSuspenseUsage");
  const client = options.queryClient ?? ctx.queryClient;
  const query = useSuspenseQuery(usageQuery(ctx, client), client);
  return result({ ...query, data: query.data, status: "success" }, ctx.streaming, options.lowThreshold) as UsageSuccessResult;
}
