import type { QueryClient } from "@tanstack/react-query";
import { forwardRef, useEffect, useId, useRef, type CSSProperties, type ReactNode } from "react";
import { useMeterContext, useMessages } from "./context.js";
import type { CounterView } from "./counterView.js";
import { CreditPacks } from "./CreditPacks.js";
import { useComposedRefs } from "./composeRefs.js";
import { cx } from "./cx.js";
import { formatAmount, formatDate, unitName } from "./format.js";
import { fill } from "./messages.js";
import { Modal, usePresence } from "./Modal.js";
import { useControllableState } from "./useControllableState.js";
import type { LimitReachedInfo } from "./limitReachedStore.js";
import { useLimitReached } from "./useLimitReached.js";
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
  /** The counter to explain when no 402 says which. Default: the first empty counter, else the first limited one. */
  counter?: string;
  /** Heading. Default: the `dialogTitle` message, or `dialogTitleMore` when opened while credit remains. */
  title?: ReactNode | ((details: LimitReachedDetails) => ReactNode);
  /** Text under the heading. Default: what is left, what was needed, and when it renews. */
  description?: ReactNode | ((details: LimitReachedDetails) => ReactNode);
  /** Label of the close button. Default: the `dialogClose` message, `"Not now"`. */
  closeLabel?: ReactNode;
  /** Shown when the server sells no pack for the counter. Default: the `packsEmpty` message. */
  emptyLabel?: string;
  /** Passed to every `BuyCreditsButton`. Default: the server's choice. */
  successUrl?: string;
  /** Passed to every `BuyCreditsButton`. Default: the server's choice. */
  cancelUrl?: string;
  /** Passed to every `BuyCreditsButton`. Default: `window.location.assign(url)`. */
  navigate?: (url: string) => void;
  /** BCP 47 locale. Default: the provider's, else the runtime's. */
  locale?: string;
  /** Class of the `<dialog>` (added to `mk-dialog`). */
  className?: string;
  /** Style of the `<dialog>`. */
  style?: CSSProperties;
  /** Classes of the inner parts. */
  classNames?: Partial<Record<LimitReachedDialogPart, string>>;
  /** Extra content under the packs (a link to plans, say). */
  children?: ReactNode;
  /** Use this QueryClient instead of the provider's. */
  queryClient?: QueryClient;
}

export const DIALOG_MESSAGES = {
  dialogTitle: "{label} limit reached",
  dialogTitleMore: "Buy more {units}",
  dialogNeeds: "This needs {required}; you have {remaining} left.",
  dialogLeft: "You have {remaining} left.",
  dialogUsedUp: "You have used all your {units}.",
  dialogRenews: "Your allowance renews on {date}.",
  dialogBuyNow: "Buy more to keep going now.",
  dialogBuyAnytime: "Buy more whenever you like.",
  dialogClose: "Not now",
  packsEmpty: "No credit packs are available right now.",
  units: {},
  labels: {} as Record<string, string>,
};

/**
 * Tells the user a counter ran out, when it renews, and offers the packs that refill it. Opens by
 * itself on a 402 `limit_reached` answer to `useMeteredFetch`, never for an unlimited counter.
 *
 * Focus rule: on every opening, focus goes to the close button ("Not now"), the one action that
 * costs nothing — the same element whether the packs are loaded or not. Tab cycles inside; Escape,
 * the close button and a backdrop click close it, and focus returns where it was.
 *
 * `data-state` is `open`, or `closed` while it closes: it stays mounted until a CSS `animation`
 * on `.mk-dialog[data-state="closed"]` ends, so exit animations run.
 */
export const LimitReachedDialog = forwardRef<HTMLDialogElement, LimitReachedDialogProps>(function LimitReachedDialog(props, ref) {
  const { open, defaultOpen = false, onOpenChange, counter: counterKey, locale: localeProp, classNames: cls = {} } = props;
  const ctx = useMeterContext("LimitReachedDialog");
  const t = useMessages(ctx, DIALOG_MESSAGES);
  const locale = localeProp ?? ctx.locale;
  const store = useLimitReached();
  const { counters } = useUsage({ queryClient: props.queryClient });
  const storeCounter = store.info ? counters.find((c) => c.key === store.info!.counter) : undefined;
  // An unlimited counter never runs out: a 402 naming one (a stale plan, say) opens nothing.
  const storeOpen = store.isOpen && !storeCounter?.unlimited;
  const [isOpen, setOpen] = useControllableState({ prop: open, defaultProp: defaultOpen || storeOpen, onChange: onOpenChange });

  // A new limit event asks to open, and `useLimitReached().close()` to close; controlled
  // dialogs hear both through onOpenChange.
  const storeWasOpen = useRef(storeOpen);
  useEffect(() => {
    if (storeOpen) setOpen(true);
    else if (storeWasOpen.current) setOpen(false);
    storeWasOpen.current = storeOpen;
  }, [storeOpen, store.info, setOpen]);

  const close = () => {
    store.close();
    setOpen(false);
  };

  const key = store.info?.counter || counterKey;
  const limited = counters.filter((c) => !c.unlimited);
  const counter = key ? counters.find((c) => c.key === key) : (limited.find((c) => c.level === "empty") ?? limited[0]);
  // While usage loads, the key stands in for the label (translated when `labels` has it).
  const label = counter ? (t.labels[counter.key] ?? counter.label) : key ? (t.labels[key] ?? key) : "";
  const details: LimitReachedDetails = {
    counter,
    label,
    info: store.info,
    renews: counter?.periodEnd ? formatDate(counter.periodEnd, locale) : undefined,
  };
  const titleId = useId();
  const descriptionId = useId();
  const dialogRef = useRef<HTMLDialogElement>(null);
  const closeRef = useRef<HTMLButtonElement>(null);
  const setRef = useComposedRefs(dialogRef, ref);
  const present = usePresence(isOpen, dialogRef);
  if (!present) return null;

  const unit = counter?.unit ?? "tokens";
  const fmt = (n: number) => formatAmount(n, unit, { locale, currency: counter?.currency, compact: false, units: t.units });
  const units = unit === "cents" ? label : unitName(unit, 2, locale, { ...t.units });
  const render = (v: LimitReachedDialogProps["title"], fallback: ReactNode) => (typeof v === "function" ? v(details) : (v ?? fallback));
  const info = store.info;
  const left = counter && !counter.unlimited ? counter.remaining : 0;
  // Opened by hand (a "Buy" button) while credit remains: offer packs, don't announce a limit.
  const voluntary = !(info && info.required > 0) && left > 0;
  const defaultDescription = (
    <>
      {info && info.required > 0
        ? fill(t.dialogNeeds, { required: fmt(info.required), remaining: fmt(info.remaining) })
        : left > 0
          ? fill(t.dialogLeft, { remaining: fmt(left) })
          : fill(t.dialogUsedUp, { units })}
      {details.renews && <> {fill(t.dialogRenews, { date: details.renews })}</>}
      {" " + (voluntary ? t.dialogBuyAnytime : t.dialogBuyNow)}
    </>
  );

  return (
    <Modal
      ref={setRef}
      open={isOpen}
      onClose={close}
      initialFocus={closeRef}
      className={cx("mk-dialog", props.className)}
      style={props.style}
      aria-labelledby={titleId}
      aria-describedby={descriptionId}
    >
      <div className={cx("mk-dialog-content", cls.content)}>
        <h2 id={titleId} className={cx("mk-dialog-title", cls.title)}>
          {render(props.title, voluntary ? fill(t.dialogTitleMore, { units }) : fill(t.dialogTitle, { label }))}
        </h2>
        <p id={descriptionId} className={cx("mk-dialog-description", cls.description)}>
          {render(props.description, defaultDescription)}
        </p>
        <CreditPacks
          counter={counter?.key ?? key}
          unit={unit}
          currency={counter?.currency}
          enabled={isOpen}
          locale={locale}
          successUrl={props.successUrl}
          cancelUrl={props.cancelUrl}
          navigate={props.navigate}
          className="mk-dialog-packs-wrap"
          emptyLabel={props.emptyLabel}
          classNames={{ list: cx("mk-dialog-packs", cls.packs), item: cx("mk-dialog-pack", cls.pack), buy: cls.buy, note: "mk-dialog-note" }}
        />
        {props.children}
        <button ref={closeRef} type="button" className={cx("mk-dialog-close", cls.close)} onClick={close}>
          {props.closeLabel ?? t.dialogClose}
        </button>
      </div>
    </Modal>
  );
});
