import { useQueryClient } from "@tanstack/react-query";
import { useCallback, useEffect, useRef } from "react";
import { autoTopUpKey, useAutoTopUp, type AutoTopUpData } from "../../src/react/index.js";

/** The provider's `baseUrl` (main.tsx): the kit keys its auto top-up query by it. */
const METER_BASE_URL = "/api/meter";

const spentOf = (data: AutoTopUpData | undefined) => data?.counters.find((c) => c.counter === "tokens")?.spentThisPeriod ?? 0;

/**
 * Tells an auto top-up from a pack bought by hand. The live balance says only that `granted`
 * rose; the returned function reads `GET /auto-top-up` again and answers whether the money
 * charged automatically this period (`spentThisPeriod`) grew since the last rise, i.e. whether
 * the worker's charge is what was credited.
 */
export function useAutoTopUpCredited(): () => Promise<boolean> {
  const queryClient = useQueryClient();
  const { data, refetch } = useAutoTopUp({ counter: "tokens" });
  const seen = useRef<number | null>(null);
  // The baseline: the first answer, and any lower one (Reset erases the settings and charges; a
  // new period starts again from 0), so the next top-up still counts as a rise.
  useEffect(() => {
    if (data && (seen.current === null || spentOf(data) < seen.current)) seen.current = spentOf(data);
  }, [data]);
  return useCallback(async () => {
    const before = seen.current ?? 0;
    await refetch();
    const now = spentOf(queryClient.getQueryData<AutoTopUpData>(autoTopUpKey(METER_BASE_URL)));
    seen.current = now;
    return now > before;
  }, [refetch, queryClient]);
}
