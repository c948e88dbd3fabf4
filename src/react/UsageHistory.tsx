import type { QueryClient } from "@tanstack/react-query";
import { forwardRef, useEffect, useId, type HTMLAttributes, type ReactNode } from "react";
import { useMeterContext, useMessages } from "./context.js";
import { cx } from "./cx.js";
import { formatAmount } from "./format.js";
import { fill, plural, type MeterMessages } from "./messages.js";
import { entriesKey, historyKey } from "./queryKeys.js";
import { useEntries, type HistoryEntry } from "./useEntries.js";
import { useUsage } from "./useUsage.js";
import { useUsageHistory } from "./useUsageHistory.js";

/** The parts of `UsageHistory` that take a class. */
export type UsageHistoryPart = "chart" | "bar" | "today" | "entries" | "entry" | "more";

export interface UsageHistoryProps extends Omit<HTMLAttributes<HTMLElement>, "children"> {
  /** The counter the chart shows. Default: the plan's first. */
  counter?: string;
  /** Days in the chart, today included. Default `14`. */
  days?: number;
  /** Entries per page. Default `20`. */
  pageSize?: number;
  /** Show the per-day chart. Default `true`. */
  showChart?: boolean;
  /** Show the ledger entries. Default `true`. */
  showEntries?: boolean;
  /** BCP 47 locale. Default: the provider's. */
  locale?: string;
  /** Classes of the inner parts (`today` is added to today's bar). */
  classNames?: Partial<Record<UsageHistoryPart, string>>;
  /** Use this QueryClient instead of the provider's. */
  queryClient?: QueryClient;
}

export const HISTORY_MESSAGES: Pick<
  MeterMessages,
  | "historyChartTitle" | "historyToday" | "historyNoUsage" | "historyEntries" | "historyNoEntries" | "historyMore" | "historyLoading"
  | "historyError" | "historyTime" | "historyKind" | "historyAmount" | "historyModel" | "kinds" | "retry" | "units" | "labels"
> = {
  historyChartTitle: { one: "{label} per day (UTC), last day", other: "{label} per day (UTC), last {count} days" },
  historyToday: "Today",
  historyNoUsage: "No usage in this period.",
  historyEntries: "Ledger entries",
  historyNoEntries: "No entries yet.",
  historyMore: "Show older entries",
  historyLoading: "Loading history…",
  historyError: "The history could not be loaded.",
  historyTime: "Time",
  historyKind: "Entry",
  historyAmount: "Amount",
  historyModel: "Model",
  kinds: {
    reserve: "held",
    commit: "charged",
    returned: "returned",
    release: "released",
    expire: "expired",
    track: "charged",
    refund: "refunded",
    grant: "credited",
    adjust: "adjusted",
    clawback: "taken back",
  },
  retry: "Try again",
  units: {},
  labels: {},
};

/** Signs by kind: `+` gives back to the balance, `−` takes from it, none for a hold or a charge. */
const SIGN: Record<string, string> = { release: "+", expire: "+", refund: "+", grant: "+", returned: "+", clawback: "−" };

/**
 * The signed-in user's usage per day (an SVG bar chart backed by a table for screen readers) and
 * the newest ledger entries, paged with "Show older entries". Both refresh when the balance
 * changes. A commit that gave part of its hold back shows that part as its own `returned` row.
 * `data-state` is `loading`, `error` or `ready`; each table row has `data-kind`.
 */
export const UsageHistory = forwardRef<HTMLElement, UsageHistoryProps>(function UsageHistory(
  { counter: key, days = 14, pageSize = 20, showChart = true, showEntries = true, locale: localeProp, classNames: cls = {}, queryClient, className, ...rest },
  ref,
) {
  const ctx = useMeterContext("UsageHistory");
  const t = useMessages(ctx, HISTORY_MESSAGES);
  const locale = localeProp ?? ctx.locale;
  const client = queryClient ?? ctx.queryClient;
  const usage = useUsage({ queryClient });
  const history = useUsageHistory({ days, enabled: showChart, queryClient });
  const entries = useEntries({ pageSize, enabled: showEntries, queryClient });
  const captionId = useId();

  // Every balance change is a new entry: read both again when the usage version moves.
  const version = usage.usage?.version;
  useEffect(() => {
    if (version === undefined) return;
    void client.invalidateQueries({ queryKey: historyKey(ctx.baseUrl) });
    void client.invalidateQueries({ queryKey: entriesKey(ctx.baseUrl) });
  }, [version, client, ctx.baseUrl]);

  const counter = usage.counters.find((c) => key == null || c.key === key);
  const unitOf = (k: string) => usage.counters.find((c) => c.key === k);
  const fmt = (n: number, k: string) => {
    const c = unitOf(k);
    return formatAmount(n, c?.unit ?? "tokens", { locale, currency: c?.currency, compact: false, units: t.units });
  };
  const failed = (showChart && history.isError) || (showEntries && entries.isError);
  const loading = (showChart && history.isPending) || (showEntries && entries.isPending);
  // Retry everything not loaded yet: one query can fail while the other is still on its way
  // (to the same failing server), and "Try again" must not leave that one behind.
  const retry = () => {
    if (showChart && !history.isSuccess) void history.refetch();
    if (showEntries && !entries.isSuccess) void entries.refetch();
  };

  let chart: ReactNode = null;
  if (showChart && history.data) {
    const k = counter?.key ?? key ?? "";
    const series = history.data.days.map((d) => ({ date: d.date, used: d.counters[k] ?? 0 }));
    const label = counter ? (t.labels[counter.key] ?? counter.label) : k;
    chart = (
      <Chart
        series={series}
        title={fill(plural(t.historyChartTitle, series.length, locale), { label, count: series.length }, true)}
        captionId={captionId}
        today={t.historyToday}
        empty={t.historyNoUsage}
        locale={locale}
        fmt={(n) => fmt(n, k)}
        cls={cls}
      />
    );
  }

  return (
    <section {...rest} ref={ref} className={cx("mk-history", className)} data-state={failed ? "error" : loading ? "loading" : "ready"} aria-busy={loading || undefined}>
      {failed && (
        <p role="alert" className="mk-history-error">
          {t.historyError}{" "}
          <button type="button" className="mk-retry" onClick={retry}>
            {t.retry}
          </button>
        </p>
      )}
      {loading && !failed && <p className="mk-history-note">{t.historyLoading}</p>}
      {chart}
      {showEntries && entries.data && (
        <div className="mk-history-entries-wrap">
          <h3 className="mk-history-title">{t.historyEntries}</h3>
          {entries.data.pages[0]?.entries.length ? (
            <table className={cx("mk-history-entries", cls.entries)}>
              <thead>
                <tr>
                  <th scope="col">{t.historyTime}</th>
                  <th scope="col">{t.historyKind}</th>
                  <th scope="col" className="mk-num">
                    {t.historyAmount}
                  </th>
                  <th scope="col">{t.historyModel}</th>
                </tr>
              </thead>
              <tbody>{entries.data.pages.flatMap((p) => p.entries.flatMap((e) => rows(e)))}</tbody>
            </table>
          ) : (
            <p className="mk-history-note">{t.historyNoEntries}</p>
          )}
          {entries.hasNextPage && (
            <button type="button" className={cx("mk-retry mk-history-more", cls.more)} aria-busy={entries.isFetchingNextPage || undefined} onClick={() => void entries.fetchNextPage()}>
              {t.historyMore}
            </button>
          )}
        </div>
      )}
    </section>
  );

  function rows(e: HistoryEntry): ReactNode[] {
    const time = new Intl.DateTimeFormat(locale, { dateStyle: "short", timeStyle: "medium" }).format(new Date(e.at));
    const row = (id: string, kind: string, dataKind: string, amount: number) => (
      <tr key={id} data-kind={dataKind} className={cls.entry}>
        <td className="mk-muted">{time}</td>
        <td>
          <span className={`mk-kind mk-kind-${kind}`}>{t.kinds[kind as keyof typeof t.kinds] ?? kind}</span>
        </td>
        <td className="mk-num">
          <bdi>
            {SIGN[kind] ?? ""}
            {fmt(Math.abs(amount), e.counter)}
          </bdi>
        </td>
        <td className="mk-muted">{e.model ?? ""}</td>
      </tr>
    );
    const back = typeof e.metadata?.refunded === "number" ? e.metadata.refunded : 0;
    return [row(e.id, e.kind, e.kind, e.amount), ...(e.kind === "commit" && back > 0 ? [row(`${e.id}-returned`, "returned", "refund", back)] : [])];
  }
});

interface ChartProps {
  series: Array<{ date: string; used: number }>;
  title: string;
  captionId: string;
  today: string;
  empty: string;
  locale: string | undefined;
  fmt: (n: number) => string;
  cls: Partial<Record<UsageHistoryPart, string>>;
}

const W = 640;
const H = 180;
const PAD = { top: 10, right: 6, bottom: 24, left: 6 };

/** The per-day bars (no chart library); a visually hidden table carries the same numbers. */
function Chart({ series, title, captionId, today, empty, locale, fmt, cls }: ChartProps) {
  const max = Math.max(0, ...series.map((d) => d.used));
  const innerW = W - PAD.left - PAD.right;
  const innerH = H - PAD.top - PAD.bottom;
  const slot = innerW / Math.max(series.length, 1);
  const barW = Math.max(3, slot * 0.62);
  const day = (date: string) => new Intl.DateTimeFormat(locale, { month: "short", day: "numeric", timeZone: "UTC" }).format(new Date(`${date}T00:00:00Z`));
  const last = series.length - 1;
  return (
    <figure className={cx("mk-history-chart", cls.chart)}>
      <figcaption id={captionId} className="mk-history-caption">
        {title}
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby={captionId} className="mk-history-svg">
        <line x1={PAD.left} x2={W - PAD.right} y1={PAD.top + innerH} y2={PAD.top + innerH} className="mk-history-axis-line" />
        {series.map((d, i) => {
          const h = max > 0 ? Math.max((Math.max(d.used, 0) / max) * innerH, d.used > 0 ? 2 : 0) : 0;
          const x = PAD.left + i * slot + (slot - barW) / 2;
          return (
            <g key={d.date}>
              <rect x={x} y={PAD.top + innerH - h} width={barW} height={h} rx={2} className={cx(cx("mk-history-bar", cls.bar), i === last ? cx("mk-history-bar-today", cls.today) : undefined)}>
                <title>{`${day(d.date)}: ${fmt(d.used)}`}</title>
              </rect>
              {(i === last || (last - i) % Math.ceil(series.length / 7) === 0) && (
                <text x={x + barW / 2} y={H - 7} textAnchor="middle" className="mk-history-axis">
                  {i === last ? today : day(d.date)}
                </text>
              )}
            </g>
          );
        })}
        {max === 0 && (
          <text x={W / 2} y={PAD.top + innerH / 2} textAnchor="middle" className="mk-history-axis">
            {empty}
          </text>
        )}
      </svg>
      <table className="mk-sr-only">
        <tbody>
          {series.map((d, i) => (
            <tr key={d.date}>
              <th scope="row">{i === last ? today : day(d.date)}</th>
              <td>{fmt(d.used)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </figure>
  );
}
