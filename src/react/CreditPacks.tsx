import type { QueryClient } from "@tanstack/react-query";
import { forwardRef, type HTMLAttributes, type ReactNode } from "react";
import { BuyCreditsButton } from "./BuyCreditsButton.js";
import { useMeterContext, useMessages } from "./context.js";
import { cx } from "./cx.js";
import { formatAmount } from "./format.js";
import { fill } from "./messages.js";
import type { UseCheckoutOptions } from "./useCheckout.js";
import { usePacks, type CreditPack } from "./usePacks.js";
import type { Unit } from "../core/types.js";

/** The parts of `CreditPacks` that take a class. */
export type CreditPacksPart = "list" | "item" | "buy" | "note" | "retry";

/** What one pack's button is made of, for `formatPack`. */
export interface CreditPackParts {
  pack: CreditPack;
  /** The credits, formatted ("100,000 tokens"). */
  amount: string;
  /** The price, formatted ("$5.00"). */
  price: string;
}

/** `CreditPacks`'s `data-state`. */
export type CreditPacksState = "loading" | "error" | "empty" | "ready";

export interface CreditPacksProps extends Omit<HTMLAttributes<HTMLDivElement>, "children" | "onError">, Omit<UseCheckoutOptions, "queryClient"> {
  /** Only packs for this counter. Default: all. */
  counter?: string;
  /** The unit of the packs' amounts. Default `"tokens"`. */
  unit?: Unit;
  /** Currency of a `cents` unit. Default `"usd"`. */
  currency?: string;
  /** Fetch the packs only when true (a closed dialog passes `false`). Default `true`. */
  enabled?: boolean;
  /** A pack's button content. Default: the `pack` message, `"{label} · {amount} · {price}"`. */
  formatPack?: (parts: CreditPackParts) => ReactNode;
  /** Shown when no pack is for sale. Default: the `packsEmpty` message. */
  emptyLabel?: ReactNode;
  /** BCP 47 locale. Default: the provider's. */
  locale?: string;
  /** Classes of the inner parts. */
  classNames?: Partial<Record<CreditPacksPart, string>>;
  /** Use this QueryClient instead of the provider's. */
  queryClient?: QueryClient;
}

export const PACKS_MESSAGES = {
  packsLabel: "Credit packs",
  pack: "{label} · {amount} · {price}",
  packsLoading: "Loading packs…",
  packsError: "Packs could not be loaded.",
  packsEmpty: "No credit packs are available right now.",
  retry: "Try again",
  units: {},
};

/**
 * The credit packs on sale, as a list of buy buttons: on a pricing page, in a settings panel,
 * or inside `LimitReachedDialog`. A failed load says so in an alert with a retry button.
 * `data-state` is `loading`, `error`, `empty` or `ready`.
 */
export const CreditPacks = forwardRef<HTMLDivElement, CreditPacksProps>(function CreditPacks(
  { counter, unit = "tokens", currency, enabled = true, formatPack, emptyLabel, locale: localeProp, classNames: cls = {}, queryClient, successUrl, cancelUrl, navigate, onSuccess, onError, className, ...rest },
  ref,
) {
  const ctx = useMeterContext("CreditPacks");
  const t = useMessages(ctx, PACKS_MESSAGES);
  const locale = localeProp ?? ctx.locale;
  const { packs, status, refetch } = usePacks({ counter, enabled, queryClient });
  const state: CreditPacksState = status === "pending" ? "loading" : status === "error" ? "error" : packs.length ? "ready" : "empty";
  const parts = (pack: CreditPack): CreditPackParts => ({
    pack,
    amount: formatAmount(pack.amount, unit, { locale, currency, compact: false, units: t.units }),
    price: formatAmount(pack.price.amount, "cents", { locale, currency: pack.price.currency, compact: false }),
  });
  return (
    <div {...rest} ref={ref} className={cx("mk-packs", className)} data-state={state} aria-busy={state === "loading" || undefined}>
      {state === "ready" ? (
        <ul className={cx("mk-packs-list", cls.list)} aria-label={t.packsLabel}>
          {packs.map((pack) => {
            const p = parts(pack);
            return (
              <li key={pack.id} className={cx("mk-packs-item", cls.item)}>
                <BuyCreditsButton packId={pack.id} successUrl={successUrl} cancelUrl={cancelUrl} navigate={navigate} onSuccess={onSuccess} onError={onError} className={cls.buy}>
                  {/* One child: a flex button must not spread the template's parts apart. */}
                  <span>{formatPack ? formatPack(p) : fill(t.pack, { label: pack.label, amount: p.amount, price: p.price })}</span>
                </BuyCreditsButton>
              </li>
            );
          })}
        </ul>
      ) : state === "error" ? (
        <p role="alert" className={cx("mk-packs-note mk-packs-error", cls.note)}>
          {t.packsError}{" "}
          <button type="button" className={cx("mk-retry", cls.retry)} onClick={() => void refetch()}>
            {t.retry}
          </button>
        </p>
      ) : (
        <p className={cx("mk-packs-note", cls.note)}>{state === "loading" ? t.packsLoading : (emptyLabel ?? t.packsEmpty)}</p>
      )}
    </div>
  );
});
