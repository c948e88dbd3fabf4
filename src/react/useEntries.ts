import { useInfiniteQuery, type QueryClient } from "@tanstack/react-query";
import { useMeterContext } from "./context.js";
import { entriesKey } from "./queryKeys.js";
import { request } from "./request.js";

/** The kinds of entry the ledger appends. */
export type EntryKind = "reserve" | "commit" | "release" | "expire" | "track" | "refund" | "grant" | "adjust" | "clawback";

/** One ledger entry of the signed-in user, as `GET /entries` sends it (newest first). */
export interface HistoryEntry {
  /** Increasing with time; the cursor pages by it. */
  id: string;
  kind: EntryKind;
  /** The counter key. */
  counter: string;
  /** In the counter's unit: a hold for `reserve`/`release`/`expire`, a charge for `commit`/`track`, credits for `grant`. */
  amount: number;
  /** ISO time. */
  at: string;
  reservationId: string | null;
  grantId: string | null;
  meterKey: string | null;
  model: string | null;
  /** A commit's `held` / `refunded`, a grant's `source`, the metadata of the call. */
  metadata: Record<string, unknown> | null;
}

/** A page of `GET /entries`. */
export interface EntriesPage {
  entries: HistoryEntry[];
  /** Pass as `before` for the next (older) page; `null` on the last page. */
  nextCursor: string | null;
}

export interface UseEntriesOptions {
  /** Entries per page. Default `20` (the server allows up to 100). */
  pageSize?: number;
  /** Fetch only when true. Default `true`. */
  enabled?: boolean;
  /** Use this QueryClient instead of the provider's. */
  queryClient?: QueryClient;
}

/**
 * The signed-in user's ledger entries, newest first, a page at a time (`GET /entries`); a
 * TanStack infinite query: `data.pages`, `fetchNextPage()`, `hasNextPage`.
 */
export function useEntries({ pageSize = 20, enabled = true, queryClient }: UseEntriesOptions = {}) {
  const ctx = useMeterContext("useEntries");
  return useInfiniteQuery(
    {
      queryKey: [...entriesKey(ctx.baseUrl), pageSize],
      queryFn: ({ pageParam }) => request<EntriesPage>(ctx, `/entries?limit=${pageSize}${pageParam ? `&before=${encodeURIComponent(pageParam)}` : ""}`),
      initialPageParam: "",
      getNextPageParam: (last: EntriesPage) => last.nextCursor ?? undefined,
      enabled,
    },
    queryClient ?? ctx.queryClient,
  );
}
