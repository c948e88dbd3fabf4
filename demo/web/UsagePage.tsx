import { UsageHistory, useCounter } from "../../src/react/index.js";
import { AutoTopUpSetting } from "./AutoTopUpSetting.js";
import { num } from "./format.js";

/**
 * The usage view: this month's numbers, then the kit's `UsageHistory` (tokens per day and the
 * ledger entries behind them, from the meter's `/usage/history` and `/entries` routes). The
 * history is read again whenever the live balance changes.
 */
export function UsagePage() {
  const { counter } = useCounter("tokens");
  const limited = counter && !counter.unlimited ? counter : undefined;
  return (
    <section className="demo-usage" aria-labelledby="usage-title">
      <h1 id="usage-title">Usage</h1>
      <dl className="demo-stats">
        <Stat label="Left" value={limited?.remaining} strong />
        <Stat label="Used this month" value={counter?.used} />
        <Stat label="Held right now" value={counter?.held} />
        <Stat label="Monthly allowance" value={limited?.quota} />
        <Stat label="Bought in packs" value={counter?.granted} />
      </dl>
      <AutoTopUpSetting />
      <div className="demo-card">
        <p className="demo-card-sub">
          Every change to the balance is an append-only ledger entry: a reply <em>reserves</em> its prompt and reply limit, then <em>commits</em> what
          it used; the rest goes back in the same step.
        </p>
        <UsageHistory counter="tokens" days={14} pageSize={40} classNames={{ entries: "demo-entries", today: "demo-chart-bar-today" }} />
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
