import { useMutation, useQuery, useQueryClient, type QueryClient } from "@tanstack/react-query";
import { useCallback } from "react";
import { useMeterContext } from "./context.js";
import type { AutoTopUpPauseReason, AutoTopUpState, AutoTopUpStatus } from "../core/autoTopUp.js";
import { request } from "./request.js";

export type { AutoTopUpPauseReason };
/** One counter's auto top-up (`GET /auto-top-up`). */
export type AutoTopUpCounterState = AutoTopUpState;
/** `GET /auto-top-up`. */
export type AutoTopUpData = AutoTopUpStatus;

/** The body of `PUT /auto-top-up`. */
export interface AutoTopUpUpdate {
  counter: string;
  enabled: boolean;
  packId?: string;
  threshold?: number;
  maxPerPeriod?: number;
}

/** The auto top-up query key: `["meterkit", "autoTopUp", baseUrl]`. */
export const autoTopUpKey = (baseUrl: string) => ["meterkit", "autoTopUp", baseUrl] as const;

export interface UseAutoTopUpOptions {
  /** The counter `state` describes. Default: the first counter with settings. */
  counter?: string;
  /** Fetch only when true. Default `true`. */
  enabled?: boolean;
  /** Use this QueryClient instead of the provider's. */
  queryClient?: QueryClient;
  /** Goes to the card-saving Checkout page. Default: `window.location.assign(url)`. */
  navigate?: (url: string) => void;
  /** Where Stripe returns after saving the card. Default: the server's choice. */
  successUrl?: string;
  /** Where Stripe returns on cancel. Default: the server's choice. */
  cancelUrl?: string;
}

export interface UseAutoTopUpResult {
  /** Everything `GET /auto-top-up` answered; undefined while loading. */
  data: AutoTopUpData | undefined;
  /** The chosen counter's state, or null when it has no settings (auto top-up never set up). */
  state: AutoTopUpCounterState | null;
  status: "pending" | "error" | "success";
  error: Error | null;
  /** Fetches `GET /auto-top-up` again (the retry of a load error). */
  refetch: () => Promise<unknown>;
  /**
   * `PUT /auto-top-up` with a fresh `Idempotency-Key` per call (a retry of the same call reuses
   * it, so the server applies the change once); resolves with the new state and refreshes the query.
   */
  update: (input: AutoTopUpUpdate) => Promise<AutoTopUpCounterState>;
  isUpdating: boolean;
  /** Opens Checkout in setup mode to save (or replace) the card: the fix for a paused top-up. */
  saveCard: () => Promise<void>;
  isSavingCard: boolean;
}

/** The signed-in user's auto top-up: its state (react-query), turning it on/off, and saving a card. */
export function useAutoTopUp({ counter, enabled = true, queryClient, navigate, successUrl, cancelUrl }: UseAutoTopUpOptions = {}): UseAutoTopUpResult {
  const ctx = useMeterContext("useAutoTopUp");
  const client = useQueryClient(queryClient ?? ctx.queryClient);
  const key = autoTopUpKey(ctx.baseUrl);
  const query = useQuery({ queryKey: key, queryFn: () => request<AutoTopUpData>(ctx, "/auto-top-up"), enabled }, client);
  const put = useMutation(
    {
      // The key travels with the variables, so a retry of this mutation reuses it; a new call of
      // `update` (a new user action) gets a new one.
      mutationFn: ({ input, key: idempotencyKey }: { input: AutoTopUpUpdate; key: string }) =>
        request<AutoTopUpCounterState>(ctx, "/auto-top-up", {
          method: "PUT",
          headers: { "content-type": "application/json", "idempotency-key": idempotencyKey },
          body: JSON.stringify(input),
        }),
      onSuccess: () => client.invalidateQueries({ queryKey: key }),
    },
    client,
  );
  const setup = useMutation(
    {
      mutationFn: () =>
        request<{ url: string }>(ctx, "/auto-top-up/setup", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ successUrl, cancelUrl }) }),
      onSuccess: ({ url }) => (navigate ? navigate(url) : window.location.assign(url)),
    },
    client,
  );
  const data = query.data;
  const state = (counter === undefined ? data?.counters[0] : data?.counters.find((c) => c.counter === counter)) ?? null;
  const { mutateAsync: putAsync } = put;
  const update = useCallback((input: AutoTopUpUpdate) => putAsync({ input, key: newIdempotencyKey() }), [putAsync]);
  const saveCard = useCallback(async () => {
    await setup.mutateAsync();
  }, [setup]);
  return {
    data,
    state,
    status: query.status,
    error: query.error ?? put.error ?? setup.error,
    refetch: query.refetch,
    update,
    isUpdating: put.isPending,
    saveCard,
    isSavingCard: setup.isPending,
  };
}

/** A random key; `crypto.randomUUID` exists only in secure contexts (a plain-http LAN host has `getRandomValues` alone). */
function newIdempotencyKey(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}
