import { useId } from "react";
import type { DailyUsage } from "../usageHistory.js";
import { num } from "./format.js";

export interface UsageChartProps {
  days: DailyUsage[];
}

const W = 880;
const H = 220;
const PAD = { top: 12, right: 8, bottom: 26, left: 48 };

/** Tokens charged per day as an SVG bar chart (no chart library); a table backs it for screen readers. */
export function UsageChart({ days }: UsageChartProps) {
  const titleId = useId();
  const max = Math.max(...days.map((d) => d.tokens), 0);
  const top = niceCeiling(max);
  const innerW = W - PAD.left - PAD.right;
  const innerH = H - PAD.top - PAD.bottom;
  const slot = innerW / Math.max(days.length, 1);
  const barW = Math.max(4, slot * 0.62);
  const y = (v: number) => PAD.top + innerH - (top > 0 ? (Math.max(v, 0) / top) * innerH : 0);
  const ticks = top > 0 ? [0, top / 2, top] : [0];
  const label = (day: string) => new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" }).format(new Date(`${day}T00:00:00Z`));
  const today = days.at(-1)?.day;

  return (
    <figure className="demo-chart">
      <figcaption id={titleId} className="demo-chart-caption">
        Tokens charged per day (UTC), last {days.length} days
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby={titleId} className="demo-chart-svg">
        {ticks.map((t) => (
          <g key={t}>
            <line x1={PAD.left} x2={W - PAD.right} y1={y(t)} y2={y(t)} className="demo-chart-grid" />
            <text x={PAD.left - 8} y={y(t)} dy="0.32em" textAnchor="end" className="demo-chart-axis">
              {compact(t)}
            </text>
          </g>
        ))}
        {days.map((d, i) => {
          const x = PAD.left + i * slot + (slot - barW) / 2;
          const base = PAD.top + innerH;
          const h = Math.max(base - y(d.tokens), d.tokens > 0 ? 2 : 0);
          return (
            <g key={d.day}>
              <rect
                x={x}
                y={base - h}
                width={barW}
                height={h}
                rx={3}
                className={d.day === today ? "demo-chart-bar demo-chart-bar-today" : "demo-chart-bar"}
              >
                <title>{`${label(d.day)}: ${num(d.tokens)} tokens, ${num(d.requests)} ${d.requests === 1 ? "reply" : "replies"}`}</title>
              </rect>
              {(i % 2 === (days.length - 1) % 2 || days.length <= 7) && (
                <text x={x + barW / 2} y={H - 8} textAnchor="middle" className="demo-chart-axis">
                  {d.day === today ? "Today" : label(d.day)}
                </text>
              )}
            </g>
          );
        })}
        {max === 0 && (
          <text x={PAD.left + innerW / 2} y={PAD.top + innerH / 2} textAnchor="middle" className="demo-chart-empty">
            No usage yet: send a prompt on the Chat page
          </text>
        )}
      </svg>
      <table className="mk-sr-only">
        <caption>Tokens charged per day</caption>
        <thead>
          <tr>
            <th scope="col">Day</th>
            <th scope="col">Tokens</th>
            <th scope="col">Replies</th>
          </tr>
        </thead>
        <tbody>
          {days.map((d) => (
            <tr key={d.day}>
              <td>{label(d.day)}</td>
              <td>{num(d.tokens)}</td>
              <td>{num(d.requests)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </figure>
  );
}

/** A round axis maximum at or above `n`: 1, 2 or 5 times a power of ten. */
function niceCeiling(n: number): number {
  if (n <= 0) return 0;
  const p = 10 ** Math.floor(Math.log10(n));
  return [1, 2, 5, 10].map((m) => m * p).find((v) => v >= n)!;
}

function compact(n: number): string {
  return new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 }).format(n);
}
