import type { QueryClient } from "@tanstack/react-query";
import { useEffect, useId, useRef, type ReactNode } from "react";
import { BuyCreditsButton } from "./BuyCreditsButton.js";
import { useMeterContext } from "./context.js";
import type { CounterView } from "./counterView.js";
import { cx } from "./cx.js";
import { formatAmount, formatDate } from "./format.js";
import { Modal } from "./Modal.js";
import { useControllableState } from "./useControllableState.js";
import { useLimitReached, type LimitReachedInfo } from "./useLimitReached.js";
import { usePacks, type CreditPack } from "./usePacks.js";
import { useUsage } from "./useUsage.js";

/** The dialog's parts that take a class. */
export type LimitReachedDialogPart = "content" | "title" | "description" | "packs" | "pack" | "buy" | "close";

/** What the dialog's texts are made of, for `title` and `description` functions. */
export interface LimitReachedDetails {
  /** The counter that ran out, when the user's usage is loaded. */
  counter: CounterView | undefined;
  /** The counter's label, or its key while usage loads. */
  label: string;
  /** The 402 answer that opened the dialog, if one did. */
  info: LimitReachedInfo | null;
  /** The renewal date, formatted; `undefined` for a counter that never renews. */
  renews: string | undefined;
}

export interface LimitReachedDialogProps {
  /** Controlled open state. Omit to let 402 answers and `useLimitReached().open()` drive it. */
  open?: boolean;
  /** Initial open state when uncontrolled. Default `false`. */
  defaultOpen?: boolean;
  /** Called when the dialog asks to open (a 402, `useLimitReached().open()`) or close. */
  onOpenChange?: (open: boolean) => void;
  /** The counter to explain when no 402 says which. Default: the first empty counter, else the first. */
  counter?: string;
  /** Heading. Default: `` `${label} limit reached` ``, or `` `Buy more ${label}` `` when opened while credit remains. */
  title?: ReactNode | ((details: LimitReachedDetails) => ReactNode);
  /** Text under the heading. Default: what is left, what was needed, and when it renews. */
  description?: ReactNode | ((details: LimitReachedDetails) => ReactNode);
  /** Label of the close button. Default `"Not now"`. */
  closeLabel?: string;
  /** Shown when the server sells no pack for the counter. Default `"No credit packs are available right now."` */
  emptyLabel?: string;
  /** Passed to every `BuyCreditsButton`. Default: the server's choice. */
  successUrl?: string;
  /** Passed to every `BuyCreditsButton`. Default: the server's choice. */
  cancelUrl?: string;
  /** Passed to every `BuyCreditsButton`. Default: `window.location.assign(url)`. */
  navigate?: (url: string) => void;
  /** BCP 47 locale. Default: the provider's, else the runtime's. */
  locale?: string;
  /** Class of the `<dialog>`. */
  className?: string;
  /** Classes of the inner parts. */
  classNames?: Partial<Record<LimitReachedDialogPart, string>>;
  /** Extra content under the packs (a link to plans, say). */
  children?: ReactNode;
  /** Use this QueryClient instead of the provider's. */
  queryClient?: QueryClient;
}

function packLabel(pack: CreditPack, counter: CounterView | undefined, locale: string | undefined): string {
  const amount = formatAmount(pack.amount, counter?.unit ?? "tokens", { locale, currency: counter?.currency, compact: false });
  return `${pack.label} · ${amount} · ${formatAmount(pack.price.amount, "cents", { locale, currency: pack.price.currency, compact: false })}`;
}

/**
 * Tells the user a counter ran out, when it renews, and offers the packs that refill it. Opens by
 * itself on a 402 `limit_reached` answer to `useMeteredFetch` / `meteredFetch`.
 */
export function LimitReachedDialog(props: LimitReachedDialogProps) {
  const { open, defaultOpen = false, onOpenChange, counter: counterKey, closeLabel = "Not now", locale: localeProp, classNames: cls = {} } = props;
  const ctx = useMeterContext("LimitReachedDialog");
  const locale = localeProp ?? ctx.locale;
  const store = useLimitReached();
  const [isOpen, setOpen] = useControllableState({ prop: open, defaultProp: defaultOpen || store.isOpen, onChange: onOpenChange });

  // A new limit event asks to open, and `useLimitReached().close()` to close; controlled
  // dialogs hear both through onOpenChange.
  const storeWasOpen = useRef(store.isOpen);
  useEffect(() => {
    if (store.isOpen) setOpen(true);
    else if (storeWasOpen.current) setOpen(false);
    storeWasOpen.current = store.isOpen;
  }, [store.isOpen, store.info, setOpen]);

  const close = () => {
    store.close();
    setOpen(false);
  };

  const { counters } = useUsage({ queryClient: props.queryClient });
  const key = store.info?.counter || counterKey;
  const counter = key ? counters.find((c) => c.key === key) : (counters.find((c) => c.level === "empty") ?? counters[0]);
  const { packs, status } = usePacks({ counter: counter?.key ?? key, enabled: isOpen, queryClient: props.queryClient });
  const details: LimitReachedDetails = {
    counter,
    label: counter?.label ?? key ?? "Usage",
    info: store.info,
    renews: counter?.periodEnd ? formatDate(counter.periodEnd, locale) : undefined,
  };
  const titleId = useId();
  const descriptionId = useId();
  if (!isOpen) return null;

  const fmt = (n: number) => formatAmount(n, counter?.unit ?? "tokens", { locale, currency: counter?.currency, compact: false });
  const render = (v: LimitReachedDialogProps["title"], fallback: ReactNode) => (typeof v === "function" ? v(details) : (v ?? fallback));
  const info = store.info;
  // Opened by hand (a "Buy" button) while credit remains: offer packs, don't announce a limit.
  const voluntary = !(info && info.required > 0) && !!counter && (counter.remaining ?? 0) > 0;
  const defaultDescription = [
    info && info.required > 0
      ? `This needs ${fmt(info.required)}; you have ${fmt(info.remaining)} left.`
      : counter && (counter.remaining ?? 0) > 0
        ? `You have ${fmt(counter.remaining ?? 0)} left.`
        : `You have used all your ${details.label.toLowerCase()}.`,
    details.renews ? `Your allowance renews on ${details.renews}.` : "",
    packs.length ? (voluntary ? "Buy more whenever you like." : "Buy more to keep going now.") : "",
  ].join(" ");

  return (
    <Modal onClose={close} className={cx("mk-dialog", props.className)} labelledBy={titleId} describedBy={descriptionId}>
      <div className={cx("mk-dialog-content", cls.content)}>
        <h2 id={titleId} className={cx("mk-dialog-title", cls.title)}>
          {render(props.title, voluntary ? `Buy more ${details.label.toLowerCase()}` : `${details.label} limit reached`)}
        </h2>
        <p id={descriptionId} className={cx("mk-dialog-description", cls.description)}>
          {render(props.description, defaultDescription.trim())}
        </p>
        {status === "pending" ? (
          <p className="mk-dialog-note">Loading packs…</p>
        ) : packs.length ? (
          <ul className={cx("mk-dialog-packs", cls.packs)} aria-label="Credit packs">
            {packs.map((pack) => (
              <li key={pack.id} className={cx("mk-dialog-pack", cls.pack)}>
                <BuyCreditsButton
                  packId={pack.id}
                  successUrl={props.successUrl}
                  cancelUrl={props.cancelUrl}
                  navigate={props.navigate}
                  className={cls.buy}
                >
                  {packLabel(pack, counter, locale)}
                </BuyCreditsButton>
              </li>
            ))}
          </ul>
        ) : (
          <p className="mk-dialog-note">{status === "error" ? "Packs could not be loaded." : (props.emptyLabel ?? "No credit packs are available right now.")}</p>
        )}
        {props.children}
        <button type="button" className={cx("mk-dialog-close", cls.close)} onClick={close}>
          {closeLabel}
        </button>
      </div>
    </Modal>
  );
}
