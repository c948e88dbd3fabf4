import type pg from "pg";
import type { MeterApi } from "../src/core/types.js";
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

/**
 * The baseline every ledger figure is measured against: a hand-written reservation as one bare
 * conditional UPDATE per step, on `bench_baseline` (one row per user `u0…u{users-1}`).
 */
export async function setupBaseline(pool: pg.Pool, users: number): Promise<void> {
  await pool.query(`DROP TABLE IF EXISTS bench_baseline;
    CREATE TABLE bench_baseline (user_id text PRIMARY KEY, quota bigint NOT NULL, used bigint NOT NULL DEFAULT 0, held bigint NOT NULL DEFAULT 0);
    INSERT INTO bench_baseline (user_id, quota) SELECT 'u' || i, 1e12 FROM generate_series(0, ${users - 1}) i;`);
}

/** One baseline reserve (1000) + commit (400) pair for `user`; returns the reserve's latency in ms. */
export async function baselinePair(pool: pg.Pool, user: string): Promise<number> {
  const t0 = performance.now();
  const r = await pool.query(
    "UPDATE bench_baseline SET held = held + $2 WHERE user_id = $1 AND quota - used - held >= $2 RETURNING quota - used - held AS remaining",
    [user, 1000],
  );
  const lat = performance.now() - t0;
  if (r.rowCount !== 1) throw new Error("baseline reserve denied");
  await pool.query("UPDATE bench_baseline SET held = held - $2, used = used + $3 WHERE user_id = $1", [user, 1000, 400]);
  return lat;
}

/**
 * The user a benchmark client picks for its `i`-th pair: `u0` on one hot user, else spread over
 * `users` users (`u0…u{users-1}`) so concurrent clients rarely meet.
 */
export function benchUser(mode: string, users: number, worker: number, i: number): string {
  return mode === "hot" ? "u0" : `u${(worker * 7919 + i * 104729) % users}`;
}

/** One meterkit reserve (1000 tokens) + commit (400) pair for `user`; returns the reserve's latency in ms. */
export async function meterPair(meter: MeterApi, user: string): Promise<number> {
  const t0 = performance.now();
  const r = await meter.reserve(user, "tokens", 1000);
  const lat = performance.now() - t0;
  if (!r.allowed) throw new Error("bench reserve denied");
  await meter.commit(r.reservationId, { actual: 400 });
  return lat;
}
