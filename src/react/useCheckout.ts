import { useCallback, useEffect, useRef, useState } from "react";
import { useMeterContext } from "./context.js";

export interface UseCheckoutOptions {
  /** Where Stripe sends the user after paying. Default: the server's choice. */
  successUrl?: string;
  /** Where Stripe sends the user on cancel. Default: the server's choice. */
  cancelUrl?: string;
  /** Goes to the Checkout URL. Default: `window.location.assign(url)`. */
  navigate?: (url: string) => void;
  /** Called when creating the session fails. */
  onError?: (error: Error) => void;
}

export interface UseCheckoutResult {
  /** Posts `/checkout` for the pack, then navigates to the returned URL. Resolves with it. */
  checkout: (packId: string) => Promise<string | undefined>;
  /** `pending` from the click until `navigate` is called, or until the page unloads with the default navigation. */
  status: "idle" | "pending" | "error";
  error: Error | null;
  reset: () => void;
}

/** Buys a credit pack through a Stripe Checkout Session the server creates. */
export function useCheckout({ successUrl, cancelUrl, navigate, onError }: UseCheckoutOptions = {}): UseCheckoutResult {
  const ctx = useMeterContext("useCheckout");
  const [state, setState] = useState<{ status: UseCheckoutResult["status"]; error: Error | null }>({ status: "idle", error: null });
  // A double click must not create two sessions.
  const busy = useRef(false);
  const checkout = useCallback(
    async (packId: string) => {
      if (busy.current) return undefined;
      busy.current = true;
      setState({ status: "pending", error: null });
      try {
        const { url } = await ctx.request<{ url: string }>("/checkout", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ packId, successUrl, cancelUrl }),
        });
        if (navigate) {
          navigate(url);
          busy.current = false;
          setState({ status: "idle", error: null });
        } else {
          // Stays pending while the browser leaves the page.
          window.location.assign(url);
        }
        return url;
      } catch (e) {
        const error = e instanceof Error ? e : new Error(String(e));
        busy.current = false;
        setState({ status: "error", error });
        onError?.(error);
        return undefined;
      }
    },
    [ctx.request, successUrl, cancelUrl, navigate, onError],
  );
  const reset = useCallback(() => {
    busy.current = false;
    setState({ status: "idle", error: null });
  }, []);
  useEffect(() => {
    // Back from Stripe, the browser may restore this page from its back/forward cache, still pending.
    const onShow = (e: PageTransitionEvent) => e.persisted && reset();
    window.addEventListener("pageshow", onShow);
    return () => window.removeEventListener("pageshow", onShow);
  }, [reset]);
  return { checkout, ...state, reset };
}
