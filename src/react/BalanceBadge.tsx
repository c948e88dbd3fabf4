import type { QueryClient } from "@tanstack/react-query";
import { useEffect, useState, type HTMLAttributes } from "react";
import { useMeterContext } from "./context.js";
import type { CounterView } from "./counterView.js";
import { formatAmount, formatDate } from "./format.js";
import { cx } from "./cx.js";
import { useCounter } from "./useCounter.js";

/** What the badge's texts are made of, for `formatLabel`. */
export interface BalanceLabelParts {
  counter: CounterView;
  /** `remaining`, formatted ("12,340 tokens", "$12.34"). */
  remaining: string;
  /** `held`, formatted. */
  held: string;
}

export interface BalanceBadgeProps extends Omit<HTMLAttributes<HTMLSpanElement>, "children"> {
  /** Which counter to show. Default: the plan's first. */
  counter?: string;
  /** Share of the counter's total at or below which the badge shows `low`. Default `0.1`. */
  lowThreshold?: number;
  /** BCP 47 locale. Default: the provider's `locale`, else the runtime's. */
  locale?: string;
  /** Compact numbers ("217K tokens"): `true`, `false`, or the value from which on. Default `100000`. */
  compact?: boolean | number;
  /** Show the amount held by running requests next to the balance. Default `true`. */
  showHeld?: boolean;
  /** The main text. Default: `` `${remaining} left` ``. */
  formatLabel?: (parts: BalanceLabelParts) => string;
  /** Text while the first answer is pending. Default `"Loading balance…"`. */
  loadingLabel?: string;
  /** Text when the balance cannot be loaded. Default `"Balance unavailable"`. */
  errorLabel?: string;
  /**
   * Milliseconds the balance must stay unchanged before screen readers hear it. A ticking stream
   * would otherwise announce every step. Default `1500`.
   */
  announceDelay?: number;
  /** Use this QueryClient instead of the provider's. */
  queryClient?: QueryClient;
  /** Extra classes for the inner parts (`className` styles the root). */
  classNames?: { text?: string; held?: string };
}

const defaultLabel = ({ remaining }: BalanceLabelParts) => `${remaining} left`;

/**
 * The user's balance, e.g. "12,340 tokens left", live. `data-state` is `loading`, `error`,
 * `normal`, `low` or `empty`; `data-held` is present while requests hold part of the balance.
 */
export function BalanceBadge({
  counter: key,
  lowThreshold,
  locale: localeProp,
  compact,
  showHeld = true,
  formatLabel = defaultLabel,
  loadingLabel = "Loading balance…",
  errorLabel = "Balance unavailable",
  announceDelay = 1500,
  queryClient,
  className,
  classNames = {},
  ...rest
}: BalanceBadgeProps) {
  const ctx = useMeterContext("BalanceBadge");
  const { counter, status } = useCounter(key, { queryClient, lowThreshold });
  const locale = localeProp ?? ctx.locale;

  let text = status == "pending" ? loadingLabel : errorLabel;
  let held = "";
  let title: string | undefined;
  if (counter) {
    const fmt = (n: number, c = compact) => formatAmount(n, counter.unit, { locale, currency: counter.currency, compact: c });
    text = formatLabel({ counter, remaining: fmt(counter.remaining ?? 0), held: fmt(counter.held) });
    if (showHeld && counter.held) held = `${fmt(counter.held)} held`;
    // The tooltip spells numbers out in full even when the badge is compact.
    title =
      `${counter.label}: ${fmt(counter.used, false)} used of ${fmt(counter.total, false)}` +
      (counter.held ? ` · ${fmt(counter.held, false)} held` : "") +
      (counter.periodEnd ? ` · renews ${formatDate(counter.periodEnd, locale)}` : "");
  }

  // Screen readers hear the balance once it settles, not every tick of a streaming reply.
  const [announced, setAnnounced] = useState(text);
  useEffect(() => {
    const t = setTimeout(setAnnounced, announceDelay, text);
    return () => clearTimeout(t);
  }, [text, announceDelay]);

  return (
    <span
      role="status"
      // role="status" implies aria-atomic; aria-live is spelled out for older screen readers.
      aria-live="polite"
      title={title}
      {...rest}
      className={cx("mk-badge", className)}
      data-state={counter?.level ?? (status == "pending" ? "loading" : "error")}
      data-held={held ? "" : undefined}
    >
      <span aria-hidden="true" className={cx("mk-badge-text", classNames.text)}>
        {text}
        {held && <span className={cx("mk-badge-held", classNames.held)}>{held}</span>}
      </span>
      <span className="mk-sr-only">{announced}</span>
    </span>
  );
}
