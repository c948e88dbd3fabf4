import pg from "pg";
import { createMeter } from "../src/server/index.js";
import { baselinePair, benchUser, loadFor, meterPair, percentile, setupBaseline, table } from "./util.js";

const USERS = 10_000;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
/** Each cell runs this many times, meterkit / baseline / 2-counter interleaved, so a burst of load elsewhere hits all three alike. */
const REPETITIONS = Number(process.env.BENCH_REPETITIONS ?? 3);
/** Only some cells (`BENCH_MODES=spread BENCH_CLIENTS=8,32`); default: all of them. */
const MODES = (process.env.BENCH_MODES ?? "spread,hot").split(",") as Array<"spread" | "hot">;
const CLIENTS = (process.env.BENCH_CLIENTS ?? "1,8,32,64").split(",").map(Number);

type Run = Awaited<ReturnType<typeof loadFor>>;

/** Median of the repetitions' pairs/s, with their spread. */
function rate(runs: Run[]): { median: number; range: string } {
  const r = runs.map((x) => x.ops / x.seconds).sort((a, b) => a - b);
  return { median: r[Math.floor(r.length / 2)]!, range: `${Math.round(r[0]!)}–${Math.round(r[r.length - 1]!)}` };
}

/**
 * Reserve+commit pairs per second and reserve latency, meterkit vs the bare conditional
 * UPDATE a hand-written reservation would be, same database, same run.
 */
export default async function ledgerBench({ databaseUrl }: { databaseUrl: string }): Promise<void> {
  const meter = createMeter({
    database: databaseUrl,
    plans: { bench: { limits: { tokens: { quota: 1e15, period: "none" }, tokens_out: { quota: 1e15, period: "none" } } } },
    schema: "bench_ledger",
    poolSize: 64,
    sweepInterval: 0,
  });
  await meter.migrate();
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 64 });

  // Users on a plan with a quota so large that no reservation is denied (both sides do the same work).
  await pool.query(`INSERT INTO bench_ledger.subscriptions (user_id, plan_id, started_at)
                    SELECT 'u' || i, 'bench', now() FROM generate_series(0, ${USERS - 1}) i ON CONFLICT DO NOTHING`);
  await setupBaseline(pool, USERS);

  const rows: Array<Record<string, string | number>> = [];
  for (const mode of MODES) {
    for (const clients of CLIENTS) {
      const user = (w: number, i: number) => benchUser(mode, USERS, w, i);
      const ours = () => loadFor(clients, SECONDS * 1000, (w, i) => meterPair(meter, user(w, i)));
      const base = () => loadFor(clients, SECONDS * 1000, (w, i) => baselinePair(pool, user(w, i)));
      // The same pair holding two counters (input and output tokens) under one reservation id.
      const multi = () => loadFor(clients, SECONDS * 1000, async (w, i) => {
        const t0 = performance.now();
        const r = await meter.reserve(user(w, i), { tokens: 1000, tokens_out: 500 });
        const lat = performance.now() - t0;
        if (!r.allowed) throw new Error("bench multi-counter reserve denied");
        await meter.commit(r.reservationId, { actual: { tokens: 400, tokens_out: 200 } });
        return lat;
      });
      const runs: { ours: Run[]; base: Run[]; multi: Run[] } = { ours: [], base: [], multi: [] };
      for (let rep = 0; rep < REPETITIONS; rep++) {
        runs.ours.push(await ours());
        runs.base.push(await base());
        runs.multi.push(await multi());
      }
      const lat = (rs: Run[]) => rs.flatMap((r) => r.latencies);
      const a = rate(runs.ours);
      const b = rate(runs.base);
      const m = rate(runs.multi);
      rows.push({
        mode,
        clients,
        "meterkit pairs/s": Math.round(a.median),
        "meterkit range": a.range,
        "baseline pairs/s": Math.round(b.median),
        "baseline range": b.range,
        ratio: a.median / b.median,
        "reserve p50 ms": percentile(lat(runs.ours), 50),
        "reserve p99 ms": percentile(lat(runs.ours), 99),
        "baseline p50 ms": percentile(lat(runs.base), 50),
        "baseline p99 ms": percentile(lat(runs.base), 99),
        "p99 ratio": percentile(lat(runs.ours), 99) / percentile(lat(runs.base), 99),
        "2-counter pairs/s": Math.round(m.median),
        "2-counter reserve p50 ms": percentile(lat(runs.multi), 50),
        "2-counter reserve p99 ms": percentile(lat(runs.multi), 99),
      });
    }
  }
  table(`Ledger: reserve+commit pairs, fsync on, ${REPETITIONS} × ${SECONDS}s per cell (median pairs/s and range; latencies over all repetitions) (goal: ratio ≥ 0.8 spread, ≥ 0.7 hot; reserve p99 ≤ 1.5× the baseline's at 32)`, rows);
  const audit = await meter.audit();
  console.log(`audit after the benchmark: ${audit.length} differences`);
  await pool.end();
  await meter.close();
}
