import type { CounterView } from "../../src/react/index.js";
import { num } from "./format.js";

export interface BalanceMeterProps {
  counter: CounterView | undefined;
}

/**
 * The month's tokens as one bar: used, held by a running reply, and left. The badge says the
 * number; this shows the proportions, and the held part growing and shrinking as replies stream.
 */
export function BalanceMeter({ counter }: BalanceMeterProps) {
  if (!counter) return <div className="demo-meter demo-meter-loading" aria-hidden="true" />;
  const total = Math.max(counter.total, counter.used + counter.held, 1);
  const pct = (n: number) => `${Math.min(100, (n / total) * 100)}%`;
  const renews = counter.periodEnd
    ? new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeZone: "UTC" }).format(counter.periodEnd)
    : null;
  return (
    <div className="demo-meter" data-level={counter.level}>
      <div
        className="demo-meter-track"
        role="meter"
        aria-label="Tokens used this month"
        aria-valuemin={0}
        aria-valuemax={total}
        aria-valuenow={counter.used + counter.held}
        aria-valuetext={`${num(counter.used)} used, ${num(counter.held)} held, ${num(counter.remaining ?? 0)} left of ${num(counter.total)}`}
      >
        <span className="demo-meter-used" style={{ width: pct(counter.used) }} />
        <span className="demo-meter-held" style={{ width: pct(counter.held) }} />
      </div>
      <p className="demo-meter-legend">
        <span>
          <i className="demo-dot demo-dot-used" aria-hidden="true" />
          {num(counter.used)} used
        </span>
        <span>
          <i className="demo-dot demo-dot-held" aria-hidden="true" />
          {num(counter.held)} held
        </span>
        <span>
          <i className="demo-dot demo-dot-left" aria-hidden="true" />
          {num(counter.remaining ?? 0)} left of {num(counter.total)}
          {counter.granted > 0 && <> (incl. {num(counter.granted)} bought)</>}
        </span>
        {renews && <span className="demo-meter-renews">allowance renews {renews}</span>}
      </p>
    </div>
  );
}
