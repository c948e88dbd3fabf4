import { startEmbeddedPostgres } from "../src/testing/startEmbeddedPostgres.js";

export { freePort } from "../src/testing/startEmbeddedPostgres.js";

/** Percentile of a sorted-on-demand sample, in the sample's unit. */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/** Prints rows as an aligned text table. */
export function table(title: string, rows: Array<Record<string, string | number>>): void {
  console.log(`\n## ${title}\n`);
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0]!);
  const cell = (v: string | number) => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : v);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c] ?? "").length)));
  const line = (vals: string[]) => "| " + vals.map((v, i) => v.padEnd(width[i]!)).join(" | ") + " |";
  console.log(line(cols));
  console.log("|" + width.map((w) => "-".repeat(w + 2)).join("|") + "|");
  for (const r of rows) console.log(line(cols.map((c) => cell(r[c] ?? ""))));
}

/**
 * A PostgreSQL for benchmarks: DATABASE_URL when set, else an embedded one with fsync ON
 * (durability is part of what is measured).
 */
export async function benchDatabase(): Promise<{ url: string; stop: () => Promise<void> }> {
  if (process.env.DATABASE_URL) return { url: process.env.DATABASE_URL, stop: async () => {} };
  return startEmbeddedPostgres({ settings: { max_connections: 400, shared_buffers: "256MB" } });
}

/** Runs `workers` loops of `fn` for `ms` milliseconds; returns operations done and per-op latencies (ms). */
export async function loadFor(workers: number, ms: number, fn: (worker: number, i: number) => Promise<number | void>): Promise<{ ops: number; seconds: number; latencies: number[] }> {
  const latencies: number[] = [];
  let ops = 0;
  const start = performance.now();
  const end = start + ms;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (let i = 0; performance.now() < end; i++) {
        const lat = await fn(w, i);
        if (typeof lat === "number") latencies.push(lat);
        ops++;
      }
    }),
  );
  return { ops, seconds: (performance.now() - start) / 1000, latencies };
}
