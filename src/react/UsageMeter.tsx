import type { QueryClient } from "@tanstack/react-query";
import { forwardRef, type HTMLAttributes, type ReactNode } from "react";
import { useMeterContext, useMessages } from "./context.js";
import { cx } from "./cx.js";
import { formatAmount, formatDate } from "./format.js";
import { fill } from "./messages.js";
import { useCounter } from "./useCounter.js";

/** The parts of `UsageMeter` that take a class. */
export type UsageMeterPart = "track" | "used" | "held" | "legend";

export interface UsageMeterProps extends Omit<HTMLAttributes<HTMLDivElement>, "children"> {
  /** Which counter to show. Default: the plan's first. */
  counter?: string;
  /** Share of the total at or below which the meter shows `low`. Default `0.1`. */
  lowThreshold?: number;
  /** BCP 47 locale. Default: the provider's. */
  locale?: string;
  /** Compact numbers in the legend: `true`, `false`, or the value from which on. Default `100000`. */
  compact?: boolean | number;
  /** Show the legend (used, held, left, renewal) under the bar. Default `true`. */
  showLegend?: boolean;
  /** Classes of the inner parts. */
  classNames?: Partial<Record<UsageMeterPart, string>>;
  /** Use this QueryClient instead of the provider's. */
  queryClient?: QueryClient;
}

export const METER_MESSAGES = {
  meterLabel: "{label} used",
  meterUsed: "{amount} used",
  meterHeld: "{amount} held",
  meterLeft: "{amount} left of {total}",
  meterGranted: "incl. {amount} bought",
  meterRenews: "Renews {date}",
  meterLoading: "Loading usage…",
  meterError: "Usage could not be loaded.",
  retry: "Try again",
  unlimited: "Unlimited",
  units: {},
  labels: {} as Record<string, string>,
};

/**
 * One counter as a bar: used, held by running requests, and left, with the renewal date. A
 * `role="meter"` with the numbers spelled out for screen readers. `data-state` is `loading`,
 * `error`, `ok`, `low`, `empty` or `unlimited` (no bar: the amount used and "Unlimited").
 */
export const UsageMeter = forwardRef<HTMLDivElement, UsageMeterProps>(function UsageMeter(
  { counter: key, lowThreshold, locale: localeProp, compact, showLegend = true, classNames: cls = {}, queryClient, className, ...rest },
  ref,
) {
  const ctx = useMeterContext("UsageMeter");
  const t = useMessages(ctx, METER_MESSAGES);
  const locale = localeProp ?? ctx.locale;
  const result = useCounter(key, { queryClient, lowThreshold });
  const c = result.counter;
  const root = (state: string, children: ReactNode, busy?: boolean) => (
    <div {...rest} ref={ref} className={cx("mk-meter", className)} data-state={state} aria-busy={busy || undefined}>
      {children}
    </div>
  );
  if (!c) {
    if (result.status === "pending") return root("loading", <div className={cx("mk-meter-track", cls.track)}><span className="mk-sr-only">{t.meterLoading}</span></div>, true);
    return root(
      "error",
      <p role="alert" className="mk-meter-error">
        {t.meterError}{" "}
        <button type="button" className="mk-retry" onClick={() => void result.refetch()}>
          {t.retry}
        </button>
      </p>,
    );
  }
  const fmt = (n: number, k = compact) => formatAmount(n, c.unit, { locale, currency: c.currency, compact: k, units: t.units });
  const label = fill(t.meterLabel, { label: t.labels[c.key] ?? c.label }, true);
  const renews = c.periodEnd && fill(t.meterRenews, { date: formatDate(c.periodEnd, locale) });
  if (c.unlimited) {
    return root(
      "unlimited",
      <p className={cx("mk-meter-legend", cls.legend)} aria-label={label}>
        <span>{fill(t.meterUsed, { amount: fmt(c.used) })}</span>
        {c.held > 0 && <span>{fill(t.meterHeld, { amount: fmt(c.held) })}</span>}
        <span className="mk-meter-unlimited">{t.unlimited}</span>
        {renews && <span className="mk-meter-renews">{renews}</span>}
      </p>,
    );
  }
  // A counter overdrawn by a late commit still fits the bar.
  const scale = Math.max(c.total, c.used + c.held, 1);
  const pct = (n: number) => `${Math.min(100, (n / scale) * 100)}%`;
  const valueText = [
    fill(t.meterUsed, { amount: fmt(c.used, false) }, true),
    fill(t.meterHeld, { amount: fmt(c.held, false) }, true),
    fill(t.meterLeft, { amount: fmt(c.remaining, false), total: fmt(c.total, false) }, true),
  ].join(", ");
  return root(
    c.level,
    <>
      <div
        className={cx("mk-meter-track", cls.track)}
        role="meter"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={scale}
        aria-valuenow={c.used + c.held}
        aria-valuetext={valueText}
      >
        <span className={cx("mk-meter-used", cls.used)} style={{ width: pct(c.used) }} />
        <span className={cx("mk-meter-held", cls.held)} style={{ width: pct(c.held) }} />
      </div>
      {showLegend && (
        <p className={cx("mk-meter-legend", cls.legend)}>
          <span data-part="used">{fill(t.meterUsed, { amount: fmt(c.used) })}</span>
          <span data-part="held">{fill(t.meterHeld, { amount: fmt(c.held) })}</span>
          <span data-part="left">
            {fill(t.meterLeft, { amount: fmt(c.remaining), total: fmt(c.total) })}
            {c.granted > 0 && <> ({fill(t.meterGranted, { amount: fmt(c.granted) })})</>}
          </span>
          {renews && <span className="mk-meter-renews">{renews}</span>}
        </p>
      )}
    </>,
  );
});
