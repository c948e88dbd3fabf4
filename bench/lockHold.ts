import { randomUUID } from "node:crypto";
import { loadavg } from "node:os";
import pg from "pg";
import { createMeter } from "../src/server/index.js";
import { loadFor, percentile, table } from "./util.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const SAMPLES = 200;

/**
 * docs/scale.md's limit: one key's throughput is 1 / (time its lock is held). Measures that
 * time for reserve and commit (the function's run inside Postgres from EXPLAIN ANALYZE, plus the
 * COMMIT that releases the lock, timed from the client so an upper bound), then reserve+commit
 * pairs/s on one hot user at 1, 8 and 32 clients against the bound 1 / (hold(reserve) + hold(commit)).
 */
export default async function lockHoldBench({ databaseUrl }: { databaseUrl: string }): Promise<void> {
  const meter = createMeter({
    database: databaseUrl,
    plans: { bench: { limits: { tokens: { quota: 1e15, period: "none" } } } },
    defaultPlan: "bench",
    schema: "bench_hold",
    poolSize: 40,
    sweepInterval: 0,
  });
  await meter.migrate();
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await meter.usage("hot");
    // 1. The hold, one transaction at a time: function time inside Postgres + COMMIT.
    const held = { reserve: [] as number[], commit: [] as number[] };
    const execMs = async (sql: string, params: unknown[]) => {
      const { rows } = await client.query<{ "QUERY PLAN": Array<{ "Execution Time": number }> }>(
        `EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) ${sql}`,
        params,
      );
      return rows[0]!["QUERY PLAN"][0]!["Execution Time"];
    };
    const committed = async () => {
      const t0 = performance.now();
      await client.query("COMMIT");
      return performance.now() - t0;
    };
    for (let i = 0; i < SAMPLES; i++) {
      await client.query("BEGIN");
      const id = "rsv_" + randomUUID().replace(/-/g, "");
      const r = await execMs("SELECT bench_hold.op_reserve('hot', 'tokens', 'tokens', 100, 600000, NULL, '', $1, NULL, NULL, NULL)", [id]);
      held.reserve.push(r + (await committed()));
      await client.query("BEGIN");
      const c = await execMs("SELECT bench_hold.op_resolve($1, false, 60, NULL)", [id]);
      held.commit.push(c + (await committed()));
    }
    const p50 = (xs: number[]) => percentile(xs, 50);
    const holdPair = p50(held.reserve) + p50(held.commit);
    table(`Lock hold per operation, one key (ms, p50 of ${SAMPLES}; load average ${loadavg().map((l) => l.toFixed(1)).join(" ")})`, [
      { op: "reserve", "hold p50": p50(held.reserve).toFixed(3), "hold p99": percentile(held.reserve, 99).toFixed(3) },
      { op: "commit", "hold p50": p50(held.commit).toFixed(3), "hold p99": percentile(held.commit, 99).toFixed(3) },
      { op: "pair", "hold p50": holdPair.toFixed(3), "hold p99": "" },
    ]);

    // 2. One hot user under 1, 8 and 32 clients.
    const rows: Array<Record<string, string | number>> = [];
    for (const clients of [1, 8, 32]) {
      const run = await loadFor(clients, SECONDS * 1000, async () => {
        const t0 = performance.now();
        const r = await meter.reserve("hot", "tokens", 100);
        if (!r.allowed) throw new Error("denied");
        await meter.commit(r.reservationId, { actual: 60 });
        return performance.now() - t0;
      });
      rows.push({
        clients,
        "pairs/s": (run.ops / run.seconds).toFixed(0),
        "of bound": ((run.ops / run.seconds) / (1000 / holdPair)).toFixed(2),
        "pair p50 ms": percentile(run.latencies, 50).toFixed(2),
        "pair p99 ms": percentile(run.latencies, 99).toFixed(2),
        load: loadavg()[0]!.toFixed(1),
      });
    }
    table(`One hot user: reserve+commit pairs/s vs the bound 1 / hold(pair) = ${(1000 / holdPair).toFixed(0)}/s`, rows);
  } finally {
    await client.end();
    await meter.close();
  }
}
