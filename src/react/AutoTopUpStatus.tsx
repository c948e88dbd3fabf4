import { forwardRef, type HTMLAttributes, type ReactNode } from "react";
import { useMeterContext, useMessages } from "./context.js";
import { cx } from "./cx.js";
import { fill, plural, type MeterMessages } from "./messages.js";
import { useAutoTopUp, type UseAutoTopUpOptions } from "./useAutoTopUp.js";

export const AUTO_TOP_UP_MESSAGES = {
  autoTopUpLoading: "Loading auto top-up…",
  autoTopUpError: "Auto top-up could not be loaded.",
  autoTopUpOff: "Auto top-up is off.",
  autoTopUpOn: { other: "Auto top-up is on: credits are bought when fewer than {threshold} remain." },
  autoTopUpInFlight: "Topping up…",
  autoTopUpPaused: "Auto top-up is paused.",
  autoTopUpReasons: {
    card_declined: "Your card was declined.",
    requires_action: "Your bank asked to confirm the payment (3-D Secure).",
    no_payment_method: "No card is saved.",
    pack_unavailable: "The chosen pack is no longer on sale.",
    payment_failed: "The payment failed.",
  },
  autoTopUpFixCard: "Update card",
  autoTopUpSaveCard: "Save a card",
  retry: "Try again",
} satisfies Partial<MeterMessages>;

/** The `data-state` of `AutoTopUpStatus`. */
export type AutoTopUpStatusState = "loading" | "error" | "off" | "active" | "paused";

export interface AutoTopUpStatusProps extends Omit<HTMLAttributes<HTMLDivElement>, "children">, Omit<UseAutoTopUpOptions, "enabled"> {
  /** BCP 47 locale for the threshold. Default: the provider's. */
  locale?: string;
}

/**
 * Shows the signed-in user's auto top-up: off, on, or paused with the reason and a button to fix
 * the card (Checkout in setup mode). `data-state` is `loading`, `error`, `off`, `active` or
 * `paused`. Its strings are the provider's `autoTopUp…` messages.
 */
export const AutoTopUpStatus = forwardRef<HTMLDivElement, AutoTopUpStatusProps>(function AutoTopUpStatus(
  { counter, queryClient, navigate, successUrl, cancelUrl, locale: localeProp, className, ...rest },
  ref,
) {
  const ctx = useMeterContext("AutoTopUpStatus");
  const t = useMessages(ctx, AUTO_TOP_UP_MESSAGES);
  const locale = localeProp ?? ctx.locale;
  const { state, status, data, saveCard, isSavingCard, refetch } = useAutoTopUp({ counter, queryClient, navigate, successUrl, cancelUrl });
  const view: AutoTopUpStatusState = status == "success" ? (state?.status ?? "off") : status == "pending" ? "loading" : "error";
  const root = (children: ReactNode) => (
    <div {...rest} ref={ref} className={cx("mk-auto-top-up", className)} data-state={view} aria-busy={view == "loading" || undefined}>
      {children}
    </div>
  );
  if (view == "error")
    return root(
      <p role="alert" className="mk-auto-top-up__text">
        {t.autoTopUpError}{" "}
        <button type="button" className="mk-retry" onClick={() => void refetch()}>
          {t.retry}
        </button>
      </p>,
    );
  const threshold = state?.threshold ?? 0;
  // The server's `pausedMessage` is English (Stripe's words): shown only for a pause without a known reason.
  const text =
    view == "loading" ? t.autoTopUpLoading
    : view == "off" ? t.autoTopUpOff
    : view == "paused" ? <>{t.autoTopUpPaused} {state!.pausedReason ? t.autoTopUpReasons[state!.pausedReason] : state!.pausedMessage}</>
    : <>{fill(plural(t.autoTopUpOn, threshold, locale), { threshold: new Intl.NumberFormat(locale).format(threshold) })}{state!.inFlight && <> {t.autoTopUpInFlight}</>}</>;
  return root(
    <>
      <p role="status" aria-live="polite" className="mk-auto-top-up__text">
        {text}
      </p>
      {(view == "paused" || (view == "active" && data?.paymentMethodSaved === false)) && (
        <button type="button" className="mk-auto-top-up__fix" onClick={() => void saveCard().catch(() => {})} disabled={isSavingCard} aria-busy={isSavingCard || undefined}>
          {data?.paymentMethodSaved ? t.autoTopUpFixCard : t.autoTopUpSaveCard}
        </button>
      )}
    </>,
  );
});
