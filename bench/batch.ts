import pg from "pg";
import { createMeter, type BatchOptions } from "../src/server/index.js";
import { baselinePair, benchUser, loadFor, meterPair, percentile, setupBaseline, table } from "./util.js";

const USERS = 10_000;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const REPETITIONS = Number(process.env.BENCH_REPETITIONS ?? 3);
/** `BENCH_BATCH='{"concurrency":2}'` measures other batch options than the defaults. */
const BATCH: BatchOptions | true = process.env.BENCH_BATCH ? (JSON.parse(process.env.BENCH_BATCH) as BatchOptions) : true;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * The batched path (`createMeter({ batch })`) against the same meter unbatched and the bare
 * conditional UPDATE, reserve+commit pairs over 10,000 users and on one hot user, same
 * database, same run. Each cell runs the three side by side in turn, REPETITIONS times; the
 * table gives the median pairs/s and the reserve latency over every repetition.
 */
export default async function batchBench({ databaseUrl }: { databaseUrl: string }): Promise<void> {
  const options = {
    database: databaseUrl,
    plans: { bench: { limits: { tokens: { quota: 1e15, period: "none" as const } } } },
    schema: "bench_batch",
    poolSize: 64,
    sweepInterval: 0,
  };
  const unbatched = createMeter(options);
  await unbatched.migrate();
  const batched = createMeter({ ...options, batch: BATCH });
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 64 });
  await pool.query(`INSERT INTO bench_batch.subscriptions (user_id, plan_id, started_at)
                    SELECT 'u' || i, 'bench', now() FROM generate_series(0, ${USERS - 1}) i ON CONFLICT DO NOTHING`);
  await setupBaseline(pool, USERS);

  const rows: Array<Record<string, string | number>> = [];
  const MODES = (process.env.BENCH_MODES ?? "spread,hot").split(",");
  const CLIENTS = (process.env.BENCH_CLIENTS ?? "1,8,32,64").split(",").map(Number);
  for (const mode of (["spread", "hot"] as const).filter((m) => MODES.includes(m))) {
    for (const clients of CLIENTS) {
      const user = (w: number, i: number) => benchUser(mode, USERS, w, i);
      const runs = { batched: [] as number[], unbatched: [] as number[], baseline: [] as number[] };
      const lat = { batched: [] as number[], unbatched: [] as number[], baseline: [] as number[] };
      for (let rep = 0; rep < REPETITIONS; rep++) {
        for (const side of ["batched", "unbatched", "baseline"] as const) {
          const r = await loadFor(clients, SECONDS * 1000, (w, i) =>
            side === "baseline" ? baselinePair(pool, user(w, i)) : meterPair(side === "batched" ? batched : unbatched, user(w, i)),
          );
          runs[side].push(r.ops / r.seconds);
          lat[side].push(...r.latencies);
        }
      }
      const b = median(runs.baseline);
      rows.push({
        mode,
        clients,
        "batched pairs/s": Math.round(median(runs.batched)),
        "unbatched pairs/s": Math.round(median(runs.unbatched)),
        "baseline pairs/s": Math.round(b),
        "batched ÷ baseline": median(runs.batched) / b,
        "unbatched ÷ baseline": median(runs.unbatched) / b,
        "batched p50/p99 ms": `${percentile(lat.batched, 50).toFixed(2)} / ${percentile(lat.batched, 99).toFixed(2)}`,
        "unbatched p50/p99 ms": `${percentile(lat.unbatched, 50).toFixed(2)} / ${percentile(lat.unbatched, 99).toFixed(2)}`,
        "baseline p50/p99 ms": `${percentile(lat.baseline, 50).toFixed(2)} / ${percentile(lat.baseline, 99).toFixed(2)}`,
      });
    }
  }
  table(
    `Batched path: reserve+commit pairs, fsync on, ${SECONDS}s per cell, median of ${REPETITIONS} (batch ${JSON.stringify(BATCH)}; goal: batched ≥ 2× baseline at 32+ clients spread)`,
    rows,
  );
  const audit = await batched.audit();
  console.log(`audit after the benchmark: ${audit.length} differences`);
  await pool.end();
  await batched.close();
  await unbatched.close();
}
