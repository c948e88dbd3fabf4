import { useMutation, type QueryClient } from "@tanstack/react-query";
import { useCallback, useEffect, useRef, useState } from "react";
import { useMeterContext } from "./context.js";
import { request } from "./request.js";

export interface UseCheckoutOptions {
  /** Where Stripe sends the user after paying. Default: the server's choice. */
  successUrl?: string;
  /** Where Stripe sends the user on cancel. Default: the server's choice. */
  cancelUrl?: string;
  /** Goes to the Checkout URL. Default: `window.location.assign(url)`. */
  navigate?: (url: string) => void;
  /** Called with the Checkout URL and the pack once the session exists, before navigating. */
  onSuccess?: (url: string, packId: string) => void;
  /** Called when creating the session fails (a `MeterRequestError` for an error answer). */
  onError?: (error: Error, packId: string) => void;
  /** Use this QueryClient instead of the provider's. */
  queryClient?: QueryClient;
}

export interface UseCheckoutResult {
  /** Posts `/checkout` for the pack, then navigates to the returned URL. Resolves with it (`undefined` on error or while busy). */
  checkout: (packId: string) => Promise<string | undefined>;
  /**
   * `pending` from the click until `navigate` is called, or until the page unloads with the
   * default navigation; `success` after a custom `navigate`.
   */
  status: "idle" | "pending" | "error" | "success";
  isPending: boolean;
  /** The last failure, or `null`. */
  error: Error | null;
  /** The pack being bought or last bought. */
  packId: string | undefined;
  reset: () => void;
}

/** Buys a credit pack through a Stripe Checkout Session the server creates (a TanStack mutation). */
export function useCheckout({ successUrl, cancelUrl, navigate, onSuccess, onError, queryClient }: UseCheckoutOptions = {}): UseCheckoutResult {
  const ctx = useMeterContext("useCheckout");
  // With the default navigation the page is leaving: stay pending until it is gone.
  const [leaving, setLeaving] = useState(false);
  // A double click must not create two sessions; state would be a render too late.
  const busy = useRef(false);
  const mutation = useMutation(
    {
      mutationFn: async (packId: string) =>
        (
          await request<{ url: string }>(ctx, "/checkout", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ packId, successUrl, cancelUrl }),
          })
        ).url,
      onSuccess: (url, packId) => {
        onSuccess?.(url, packId);
        if (navigate) {
          busy.current = false;
          navigate(url);
        } else {
          setLeaving(true);
          window.location.assign(url);
        }
      },
      onError: (error, packId) => {
        busy.current = false;
        onError?.(error, packId);
      },
    },
    queryClient ?? ctx.queryClient,
  );
  const { mutateAsync, reset: resetMutation } = mutation;
  const checkout = useCallback(
    async (packId: string) => {
      if (busy.current) return undefined;
      busy.current = true;
      return mutateAsync(packId).catch(() => undefined);
    },
    [mutateAsync],
  );
  const reset = useCallback(() => {
    busy.current = false;
    setLeaving(false);
    resetMutation();
  }, [resetMutation]);
  useEffect(() => {
    // Back from Stripe, the browser may restore this page from its back/forward cache, still pending.
    const onShow = (e: PageTransitionEvent) => e.persisted && reset();
    window.addEventListener("pageshow", onShow);
    return () => window.removeEventListener("pageshow", onShow);
  }, [reset]);
  const status = leaving ? "pending" : mutation.status;
  return { checkout, status, isPending: status === "pending", error: mutation.error, packId: mutation.variables, reset };
}
