import type { QueryClient } from "@tanstack/react-query";
import { createElement as h, forwardRef, useEffect, useRef, useState, type HTMLAttributes, type ReactNode } from "react";
import { useMeterContext, useMessages } from "./context.js";
import type { CounterView } from "./counterView.js";
import { formatAmount, formatDate } from "./format.js";
import { cx } from "./cx.js";
import { fill, type MeterMessagesInput } from "./messages.js";
import { useUsageFor } from "./useUsage.js";

/** What the badge's texts are made of, for `formatLabel`. */
export interface BalanceLabelParts {
  counter: CounterView;
  /** `remaining`, formatted ("12,340 tokens", "$12.34"); the `unlimited` message for an unlimited counter. */
  remaining: string;
  /** `held`, formatted. */
  held: string;
}

/** The badge's `data-state`. */
export type BalanceBadgeState = "ok" | "low" | "empty" | "unlimited" | "loading" | "error";

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
  /**
   * The main text, a string or any node (an icon and a number, say). Screen readers hear its
   * text content. Default: the `badgeLabel` message, `"{remaining} left"`.
   */
  formatLabel?: (parts: BalanceLabelParts) => ReactNode;
  /**
   * Milliseconds the balance must stay unchanged before screen readers hear it, so a ticking
   * stream is not read out at every step. The first balance, and a change of state (low,
   * empty), are announced at once. Default `1000`.
   */
  announceDelay?: number;
  /** Use this QueryClient instead of the provider's. */
  queryClient?: QueryClient;
  /** Extra classes for the inner parts (`className` styles the root). */
  classNames?: { text?: string; held?: string; icon?: string };
}

/** The badge's English defaults; without `units` and `labels` it shows the English unit names and the server's labels. */
export const BADGE_MESSAGES = {
  badgeLabel: "{remaining} left",
  badgeHeld: "{held} held",
  badgeLoading: "Loading balance…",
  badgeError: "Balance unavailable",
  badgeTitle: "{label}: {used} used of {total}",
  badgeTitleHeld: "{held} held",
  badgeTitleRenews: "renews {date}",
  stateLow: "Running low",
  stateEmpty: "Used up",
  unlimited: "Unlimited",
};

/**
 * The user's balance, e.g. "12,340 tokens left", live. `data-state` is `loading`, `error`, `ok`,
 * `low`, `empty` or `unlimited`; `data-held` is present while requests hold part of the balance.
 * Low and empty show an icon as well as a colour, and say so to screen readers.
 */
export const BalanceBadge = forwardRef<HTMLSpanElement, BalanceBadgeProps>(function BalanceBadge(
  { counter: key, lowThreshold, locale: localeProp, compact, showHeld = true, formatLabel, announceDelay = 1000, queryClient, className, classNames = {}, ...rest },
  ref,
) {
  const ctx = useMeterContext("BalanceBadge");
  const t = useMessages<typeof BADGE_MESSAGES & Pick<MeterMessagesInput, "units" | "labels">>(ctx, BADGE_MESSAGES);
  const { counters, status } = useUsageFor(ctx, { queryClient, lowThreshold });
  const c = counters.find((v) => key == null || v.key == key);
  const locale = localeProp ?? ctx.locale;
  const state: BalanceBadgeState = c?.level ?? (status == "pending" ? "loading" : "error");

  let label: ReactNode = state == "loading" ? t.badgeLoading : t.badgeError;
  let held = "";
  let title: string | undefined;
  if (c) {
    // The tooltip (full = true) spells numbers out in full even when the badge is compact.
    const fmt = (n: number, full?: boolean) => formatAmount(n, c.unit, { locale, currency: c.currency, compact: full ? false : compact, units: t.units });
    const remaining = c.unlimited ? t.unlimited : fmt(c.remaining);
    label = formatLabel ? formatLabel({ counter: c, remaining, held: fmt(c.held) }) : c.unlimited ? remaining : fill(t.badgeLabel, { remaining });
    if (showHeld && c.held) held = fill(t.badgeHeld, { held: fmt(c.held) }, true);
    title = fill(t.badgeTitle, { label: t.labels?.[c.key] ?? c.label, used: fmt(c.used, true), total: c.unlimited ? remaining : fmt(c.total, true) }, true);
    if (c.held) title += " · " + fill(t.badgeTitleHeld, { held: fmt(c.held, true) }, true);
    if (c.periodEnd) title += " · " + fill(t.badgeTitleRenews, { date: formatDate(c.periodEnd, locale) }, true);
  }
  const stateText = state == "low" ? t.stateLow : state == "empty" ? t.stateEmpty : "";

  // What screen readers hear: the visible text as rendered (a formatLabel node too), read from
  // the DOM once it is there, and the state in words.
  const textRef = useRef<HTMLSpanElement>(null);
  const [announced, setAnnounced] = useState("");
  const lastState = useRef<BalanceBadgeState>(undefined);
  const visible = title ?? label;
  useEffect(() => {
    const next = textRef.current!.firstChild!.textContent + (stateText && ". " + stateText);
    // The first text and a new state (loaded, low, empty) are news at once; a ticking number
    // waits until it has settled for `announceDelay`.
    const now = lastState.current !== state;
    lastState.current = state;
    if (now) return setAnnounced(next);
    const timer = setTimeout(setAnnounced, announceDelay, next);
    return () => clearTimeout(timer);
  }, [visible, state, stateText, announceDelay]);

  // createElement, not JSX: the badge then needs no react/jsx-runtime import (see MeterProvider).
  return h(
    "span",
    // role="status" implies aria-atomic; aria-live is spelled out for older screen readers.
    { role: "status", "aria-live": "polite", title, ...rest, ref, className: cx("mk-badge", className), "data-state": state, "data-held": held ? "" : undefined },
    h("span", { "aria-hidden": "true", className: cx("mk-badge-icon", classNames.icon), title: stateText || undefined }, state == "low" ? "!" : state == "empty" ? "×" : state == "unlimited" ? "∞" : ""),
    h("span", { "aria-hidden": "true", ref: textRef, className: cx("mk-badge-text", classNames.text) }, h("span", null, label), held && h("span", { className: cx("mk-badge-held", classNames.held) }, held)),
    h("span", { className: "mk-sr-only" }, announced),
  );
});
