import { forwardRef, type HTMLAttributes } from "react";
import { cx } from "./cx.js";
import { useAutoTopUp, type AutoTopUpCounterState, type AutoTopUpPauseReason, type UseAutoTopUpOptions } from "./useAutoTopUp.js";

/** The strings of `AutoTopUpStatus` (English defaults). */
export interface AutoTopUpStatusLabels {
  loading: string;
  off: string;
  active: (state: AutoTopUpCounterState) => string;
  inFlight: string;
  paused: string;
  reasons: Record<AutoTopUpPauseReason, string>;
  fixCard: string;
  saveCard: string;
  error: string;
}

const DEFAULT_LABELS: AutoTopUpStatusLabels = {
  loading: "Loading auto top-up…",
  off: "Auto top-up is off.",
  active: (s) => `Auto top-up is on: credits are bought when fewer than ${s.threshold.toLocaleString("en-US")} remain.`,
  inFlight: "Topping up…",
  paused: "Auto top-up is paused.",
  reasons: {
    card_declined: "Your card was declined.",
    requires_action: "Your bank asked to confirm the payment (3-D Secure).",
    no_payment_method: "No card is saved.",
    pack_unavailable: "The chosen pack is no longer on sale.",
    payment_failed: "The payment failed.",
  },
  fixCard: "Update card",
  saveCard: "Save a card",
  error: "Auto top-up could not be loaded.",
};

export interface AutoTopUpStatusProps extends Omit<HTMLAttributes<HTMLDivElement>, "children">, Omit<UseAutoTopUpOptions, "enabled"> {
  /** Replace some or all built-in strings. Default: English. */
  labels?: Partial<AutoTopUpStatusLabels>;
}

/**
 * Shows the signed-in user's auto top-up: off, on, or paused with the reason and a button to fix
 * the card (Checkout in setup mode). `data-state` is `loading`, `error`, `off`, `active` or `paused`.
 */
export const AutoTopUpStatus = forwardRef<HTMLDivElement, AutoTopUpStatusProps>(function AutoTopUpStatus(
  { counter, queryClient, navigate, successUrl, cancelUrl, labels, className, ...rest },
  ref,
) {
  const l = { ...DEFAULT_LABELS, ...labels, reasons: { ...DEFAULT_LABELS.reasons, ...labels?.reasons } };
  const { state, status, data, saveCard, isSavingCard } = useAutoTopUp({ counter, queryClient, navigate, successUrl, cancelUrl });
  const view = status === "pending" ? "loading" : status === "error" ? "error" : (state?.status ?? "off");
  let text: string;
  if (view === "loading") text = l.loading;
  else if (view === "error") text = l.error;
  else if (view === "paused") text = `${l.paused} ${state?.pausedReason ? l.reasons[state.pausedReason] : (state?.pausedMessage ?? "")}`.trim();
  else if (view === "active") text = state!.inFlight ? `${l.active(state!)} ${l.inFlight}` : l.active(state!);
  else text = l.off;
  const showFix = view === "paused" || (view === "active" && data?.paymentMethodSaved === false);
  return (
    <div ref={ref} className={cx("mk-auto-top-up", className)} data-state={view} {...rest}>
      <p role="status" aria-live="polite" className="mk-auto-top-up__text">
        {text}
      </p>
      {showFix ? (
        <button type="button" className="mk-auto-top-up__fix" onClick={() => void saveCard().catch(() => {})} disabled={isSavingCard} aria-busy={isSavingCard || undefined}>
          {data?.paymentMethodSaved ? l.fixCard : l.saveCard}
        </button>
      ) : null}
    </div>
  );
});
