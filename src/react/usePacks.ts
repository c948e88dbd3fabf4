import { useQuery, type QueryClient } from "@tanstack/react-query";
import { useMeterContext } from "./context.js";
import { packsKey } from "./queryKeys.js";
import { request } from "./request.js";

/** A credit pack the server sells (`GET /packs`). */
export interface CreditPack {
  id: string;
  label: string;
  /** The counter the pack credits. */
  counter: string;
  /** Credits added, in the counter's unit. */
  amount: number;
  /** What it costs, in integer minor units of `currency` (cents for USD). */
  price: { amount: number; currency: string };
}

export interface UsePacksOptions {
  /** Only packs for this counter. Default: all. */
  counter?: string;
  /** Fetch only when true, e.g. while a dialog is open. Default `true`. */
  enabled?: boolean;
  /** Use this QueryClient instead of the provider's. */
  queryClient?: QueryClient;
}

export interface UsePacksResult {
  /** The packs; empty while loading. */
  packs: CreditPack[];
  status: "pending" | "error" | "success";
  isLoading: boolean;
  error: Error | null;
  /** Fetches `GET /packs` again (the retry of a failed load). */
  refetch: () => Promise<unknown>;
}

/** The credit packs on sale. They rarely change, so they are cached for five minutes. */
export function usePacks({ counter, enabled = true, queryClient }: UsePacksOptions = {}): UsePacksResult {
  const ctx = useMeterContext("usePacks");
  const query = useQuery(
    {
      queryKey: packsKey(ctx.baseUrl),
      queryFn: async () => (await request<{ packs: CreditPack[] }>(ctx, "/packs")).packs,
      staleTime: 5 * 60_000,
      enabled,
    },
    queryClient ?? ctx.queryClient,
  );
  const packs = query.data ?? [];
  return {
    packs: counter === undefined ? packs : packs.filter((p) => p.counter === counter),
    status: query.status,
    isLoading: query.isPending && enabled,
    error: query.error,
    refetch: query.refetch,
  };
}
