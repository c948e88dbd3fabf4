import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { useUsage } from "../../src/react/index.js";
import type { HistoryEntry, UsageHistory } from "../usageHistory.js";
import { num, time } from "./format.js";
import { UsageChart } from "./UsageChart.js";

/**
 * The usage view: this month's numbers, tokens per day, and the ledger entries behind them.
 * The history is read again whenever the live balance changes (its `version` moves).
 */
export function UsagePage() {
  const { usage, counters } = useUsage();
  const counter = counters.find((c) => c.key === "tokens");
  const history = useQuery({
    queryKey: ["demo", "history", usage?.version ?? 0],
    queryFn: async () => {
      const res = await fetch("/api/history", { cache: "no-store" });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      return (await res.json()) as UsageHistory;
    },
    placeholderData: keepPreviousData,
  });

  return (
    <section className="demo-usage" aria-labelledby="usage-title">
      <h1 id="usage-title">Usage</h1>
      <dl className="demo-stats">
        <Stat label="Left" value={counter?.remaining ?? undefined} strong />
        <Stat label="Used this month" value={counter?.used} />
        <Stat label="Held right now" value={counter?.held} />
        <Stat label="Monthly allowance" value={counter?.quota ?? undefined} />
        <Stat label="Bought in packs" value={counter?.granted} />
      </dl>

      <div className="demo-card">{history.data ? <UsageChart days={history.data.days} /> : <div className="demo-chart-placeholder" />}</div>

      <div className="demo-card">
        <h2 className="demo-card-title">Ledger entries</h2>
        <p className="demo-card-sub">
          Newest first. Every change to the balance is an append-only entry: a reply <em>reserves</em> its prompt and reply limit, then{" "}
          <em>commits</em> what it used; the rest goes back in the same step.
        </p>
        {history.isError && <p role="alert">The history could not be loaded.</p>}
        {history.data && history.data.entries.length === 0 && <p className="demo-muted">No entries yet.</p>}
        {history.data && history.data.entries.length > 0 && (
          <table className="demo-entries">
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Entry</th>
                <th scope="col" className="demo-num">
                  Tokens
                </th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {history.data.entries.flatMap((e) => rows(e))}
            </tbody>
          </table>
        )}
      </div>
    </section>
  );
}

function Stat({ label, value, strong }: { label: string; value: number | undefined; strong?: boolean }) {
  return (
    <div className={strong ? "demo-stat demo-stat-strong" : "demo-stat"}>
      <dt>{label}</dt>
      <dd>{value === undefined ? "…" : num(value)}</dd>
    </div>
  );
}

/**
 * Table rows of one entry. A commit is one entry that does two things, so it gets two rows: the
 * charge, and the refund of the unused part of the hold.
 */
function rows(e: HistoryEntry) {
  const row = (key: string, kind: string, amount: string, detail: string) => (
    <tr key={key} data-kind={kind}>
      <td className="demo-muted">{time(e.at)}</td>
      <td>
        <span className={`demo-kind demo-kind-${kind}`}>{kind}</span>
      </td>
      <td className="demo-num">{amount}</td>
      <td className="demo-muted">{detail}</td>
    </tr>
  );
  const n = (v: number) => num(Math.abs(v));
  switch (e.kind) {
    case "reserve":
      return [
        row(e.id, "reserve", n(e.amount), e.inputTokens !== undefined && e.maxOutputTokens !== undefined ? `held: prompt ${num(e.inputTokens)} + reply limit ${num(e.maxOutputTokens)}` : "held for a reply"),
      ];
    case "commit":
      return [
        row(e.id, "commit", n(e.amount), e.held !== undefined ? `charged for the reply, out of ${num(e.held)} held` : "charged for the reply"),
        ...(e.refunded ? [row(`${e.id}-refund`, "refund", `+${num(e.refunded)}`, "the unused part of the hold, back on the balance")] : []),
      ];
    case "release":
      return [row(e.id, "release", `+${n(e.amount)}`, "hold released: nothing charged")];
    case "expire":
      return [row(e.id, "expire", `+${n(e.amount)}`, "hold expired: nothing charged")];
    case "grant":
      return [
        row(e.id, "grant", e.amount >= 0 ? `+${n(e.amount)}` : `−${n(e.amount)}`, e.source === "stripe" ? "credit pack, paid through Stripe Checkout" : e.source === "debt" ? "debt after a refunded payment" : `granted (${e.source ?? "manual"})`),
      ];
    case "refund":
      return [row(e.id, "refund", `+${n(e.amount)}`, "given back")];
    case "clawback":
      return [row(e.id, "clawback", `−${n(e.amount)}`, "credits taken back after a refunded payment")];
    case "track":
      return [row(e.id, "track", n(e.amount), "charged without a hold")];
    case "adjust":
      return [row(e.id, "adjust", n(e.amount), "manual correction")];
  }
}
