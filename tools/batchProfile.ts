/**
 * `npx tsx tools/batchProfile.ts`: where the time of the batched path (and of the direct path)
 * goes, for one benchmark cell at a time — what `bench/batch.ts` only times from outside.
 *
 * Starts its own embedded PostgreSQL (fsync on, as the benchmark), the same plan, users and
 * reserve + commit pairs as `bench/batch.ts`, and runs one side (`PROFILE_SIDE`: `batched`,
 * `unbatched` or `baseline`) for `PROFILE_SECONDS` (default 4) at `PROFILE_CLIENTS` (default 32)
 * clients, `PROFILE_MODE` `spread` (default) or `hot`; `BENCH_BATCH` as in the benchmark. Prints:
 * pairs/s; Node CPU µs per operation (`process.cpuUsage`); Postgres CPU µs per operation (every
 * process of the server, from /proc); what the meter's pool was asked (statements by kind, the
 * histogram of batch sizes, time a statement spent in flight vs the time a call waited for a
 * connection); event-loop delay p50/p99. Run the Node side under `node --cpu-prof --import tsx`
 * for a CPU profile. `PROFILE_STATEMENTS=1` loads pg_stat_statements (track = all) and prints,
 * per side, the statements that ran inside Postgres: µs per op_batch call (or per operation
 * unbatched), calls and plannings per batch, nested statements included, largest first.
 * Every side also prints WAL bytes, records, full-page images and flushes per operation with
 * the time each flush took (pg_stat_wal, pg_stat_io, `track_wal_io_timing`), the table scans per operation (a sequential scan here means a
 * plan went wrong) and, batched, the share of the run with 0, 1, 2… batches in flight;
 * `PROFILE_WAL=1` adds the WAL by record type (pg_walinspect).
 */
import { readFileSync, readdirSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import pg from "pg";
import { createMeter, type BatchOptions, type Meter } from "../src/server/index.js";
import { internalsOf } from "../src/server/internals.js";
import { baselinePair, benchUser, loadFor, meterPair, percentile, setupBaseline } from "../bench/util.js";
import { startEmbeddedPostgres } from "../src/testing/startEmbeddedPostgres.js";

const USERS = 10_000;
const SECONDS = Number(process.env.PROFILE_SECONDS ?? 4);
const CLIENTS = Number(process.env.PROFILE_CLIENTS ?? 32);
const MODE = process.env.PROFILE_MODE ?? "spread";
const SIDES = (process.env.PROFILE_SIDE ?? "batched").split(",");
const BATCH: BatchOptions | true = process.env.BENCH_BATCH ? (JSON.parse(process.env.BENCH_BATCH) as BatchOptions) : true;
const POOL_SIZE = Number(process.env.PROFILE_POOL ?? 64);
const STATEMENTS = process.env.PROFILE_STATEMENTS === "1";
const WAL_RECORDS = process.env.PROFILE_WAL === "1";

/** CPU ticks (utime + stime) of every process whose command line names `dataDir`'s server. */
function postgresTicks(port: number): number {
  let ticks = 0;
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (!stat.includes("(postgres)")) continue;
      const env = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      // The postmaster names its port; its children share its process group.
      if (!env.includes(String(port)) && !isChildOf(stat, port)) continue;
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // gone meanwhile
    }
  }
  return ticks;
}
let postmasterPid = 0;
function isChildOf(stat: string, _port: number): boolean {
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(f[1]) === postmasterPid;
}
function findPostmaster(port: number): number {
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (cmd.includes("postgres") && cmd.includes(String(port))) return Number(pid);
    } catch {
      // gone
    }
  }
  return 0;
}

/** Per table of the meter's schema: sequential scans, rows they read, index scans (pg_stat_user_tables). */
async function tableScans(pool: pg.Pool): Promise<Map<string, number[]>> {
  await pool.query("SELECT pg_stat_clear_snapshot()");
  const { rows } = await pool.query<{ t: string; s: string; r: string; i: string }>(
    "SELECT relname AS t, seq_scan::text AS s, seq_tup_read::text AS r, coalesce(idx_scan, 0)::text AS i FROM pg_stat_user_tables",
  );
  return new Map(rows.map((r) => [r.t, [Number(r.s), Number(r.r), Number(r.i)]]));
}

/**
 * The server's WAL counters (pg_stat_wal, pg_stat_io): bytes, records, full-page images, flushes
 * (fsyncs) and the milliseconds spent in them (the server runs with `track_wal_io_timing`).
 */
async function walStats(pool: pg.Pool): Promise<{ bytes: number; records: number; fpi: number; syncs: number; syncMs: number }> {
  const { rows } = await pool.query<{ bytes: string; records: string; fpi: string; syncs: string; ms: string }>(
    "SELECT wal_bytes::text AS bytes, wal_records::text AS records, wal_fpi::text AS fpi, " +
      "(SELECT sum(fsyncs)::text FROM pg_stat_io WHERE object = 'wal') AS syncs, " +
      "(SELECT sum(fsync_time)::text FROM pg_stat_io WHERE object = 'wal') AS ms FROM pg_stat_wal",
  );
  const r = rows[0]!;
  return { bytes: Number(r.bytes), records: Number(r.records), fpi: Number(r.fpi), syncs: Number(r.syncs ?? 0), syncMs: Number(r.ms ?? 0) };
}

/** The WAL written between two positions, by record type (pg_walinspect): records and bytes per operation. */
async function printWalRecords(pool: pg.Pool, from: string, to: string, ops: number): Promise<void> {
  const { rows } = await pool.query<{ t: string; n: string; bytes: string; fpi: string }>(
    `SELECT "resource_manager/record_type" AS t, count::text AS n, combined_size::text AS bytes, fpi_size::text AS fpi
     FROM pg_get_wal_stats($1::pg_lsn, $2::pg_lsn, true) WHERE count > 0 ORDER BY combined_size DESC LIMIT 16`,
    [from, to],
  );
  console.log("WAL by record type, per operation (records, bytes, of which full-page images):");
  for (const r of rows) {
    console.log(`  ${(Number(r.n) / ops).toFixed(2).padStart(6)} ${(Number(r.bytes) / ops).toFixed(0).padStart(6)} B ${(Number(r.fpi) / ops).toFixed(0).padStart(5)} B  ${r.t}`);
  }
}

/** Wraps a pool's connect so every statement it runs is counted and timed. */
function instrument(pool: pg.Pool) {
  const stats = { waitMs: 0, flightMs: 0, statements: new Map<string, number>(), sizes: new Map<number, number>(), connects: 0, spans: [] as [number, number][] };
  const connect = ((pool as { __connect?: unknown }).__connect ??= pool.connect.bind(pool)) as () => Promise<pg.PoolClient>;
  (pool as { connect: unknown }).connect = async () => {
    const t0 = performance.now();
    const client = await connect();
    stats.waitMs += performance.now() - t0;
    stats.connects++;
    const q = client.query.bind(client) as (c: pg.QueryConfig) => Promise<pg.QueryResult>;
    (client as { query: unknown }).query = async (config: pg.QueryConfig) => {
      const text = config.text;
      const kind = /op_batch/.test(text) ? "op_batch" : /op_reserve/.test(text) ? "op_reserve" : /op_resolve/.test(text) ? "op_resolve" : /pg_notify/.test(text) ? "notify" : text.slice(0, 30);
      stats.statements.set(kind, (stats.statements.get(kind) ?? 0) + 1);
      if (kind === "op_batch") {
        const v = config.values?.[0];
        const n = typeof v === "string" ? (JSON.parse(v) as unknown[]).length : Array.isArray(v) ? v.length : 0;
        stats.sizes.set(n, (stats.sizes.get(n) ?? 0) + 1);
      } else if (kind === "op_reserve" || kind === "op_resolve") stats.sizes.set(1, (stats.sizes.get(1) ?? 0) + 1);
      const t1 = performance.now();
      try {
        return await q(config);
      } finally {
        stats.flightMs += performance.now() - t1;
        if (kind === "op_batch") stats.spans.push([t1, performance.now()]);
        (client as { query: unknown }).query = q;
      }
    };
    return client;
  };
  return stats;
}

/** The statements pg_stat_statements saw since its reset: µs and calls per `per`, largest first. */
async function printStatements(pool: pg.Pool, { n, per }: { n: number; per: string }): Promise<void> {
  const { rows } = await pool.query<{ query: string; calls: string; total: number; toplevel: boolean; generic: string; custom: string }>(
    `SELECT query, calls, total_exec_time AS total, toplevel, plans::text AS generic, '0' AS custom FROM pg_stat_statements
     WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT LIKE '%pg_stat_statements%'
     ORDER BY total_exec_time DESC LIMIT 25`,
  );
  console.log(`statements inside Postgres, per ${per} (${n}):`);
  for (const r of rows) {
    const text = r.query.replace(/\s+/g, " ").slice(0, 110);
    const plans = `${(Number(r.generic) / n).toFixed(2)} plans`;
    console.log(`  ${((r.total * 1000) / n).toFixed(0).padStart(6)} µs ${(Number(r.calls) / n).toFixed(2).padStart(6)} calls ${plans.padStart(11)} ${r.toplevel ? "top " : "    "} ${text}`);
  }
}

const db = await startEmbeddedPostgres({
  settings: {
    max_connections: 400,
    shared_buffers: "256MB",
    track_wal_io_timing: "on",
    ...(STATEMENTS ? { shared_preload_libraries: "pg_stat_statements", "pg_stat_statements.track": "all", "pg_stat_statements.track_planning": "on" } : {}),
  },
});
try {
  postmasterPid = findPostmaster(db.port);
  const options = {
    database: db.url,
    plans: { bench: { limits: { tokens: { quota: 1e15, period: "none" as const } } } },
    schema: "bench_batch",
    poolSize: POOL_SIZE,
    sweepInterval: 0,
  };
  const unbatched = createMeter(options);
  await unbatched.migrate();
  const batched = createMeter({ ...options, batch: BATCH });
  const pool = new pg.Pool({ connectionString: db.url, max: 64 });
  await pool.query(`INSERT INTO bench_batch.subscriptions (user_id, plan_id, started_at)
                    SELECT 'u' || i, 'bench', now() FROM generate_series(0, ${USERS - 1}) i ON CONFLICT DO NOTHING`);
  await setupBaseline(pool, USERS);
  if (STATEMENTS) await pool.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
  if (WAL_RECORDS) await pool.query("CREATE EXTENSION IF NOT EXISTS pg_walinspect");
  const user = (w: number, i: number) => benchUser(MODE, USERS, w, i);
  // `c2` is the batched meter with { concurrency: 2 } (others as BENCH_BATCH); PROFILE_REPS
  // rounds of every side in turn, so load from elsewhere hits them alike.
  const meters = new Map<string, Meter>([["batched", batched], ["unbatched", unbatched]]);
  for (const side of SIDES) {
    const c = /^c(\d+)$/.exec(side);
    if (c) {
      const m = createMeter({ ...options, batch: { ...(BATCH === true ? {} : BATCH), concurrency: Number(c[1]) } });
      meters.set(side, m);
    }
  }
  for (let rep = 0; rep < Number(process.env.PROFILE_REPS ?? 1); rep++) for (const side of SIDES) {
    const meter = meters.get(side) ?? unbatched;
    // Warm up (plans, prepared statements, connections), then measure.
    await loadFor(CLIENTS, 500, (w, i) => (side === "baseline" ? baselinePair(pool, user(w, i)) : meterPair(meter, user(w, i))));
    const stats = side === "baseline" ? null : instrument(internalsOf(meter).pool);
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    // What the meter's backends wait on, sampled every 10 ms on a connection of its own.
    const waits = new Map<string, number>();
    let sampling = process.env.PROFILE_WAITS === "1";
    const sampler = (async () => {
      if (!sampling) return;
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      while (sampling) {
        const { rows } = await c.query<{ w: string }>(
          "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS w FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
        );
        for (const { w } of rows) waits.set(w, (waits.get(w) ?? 0) + 1);
        await new Promise((r) => setTimeout(r, 10));
      }
      await c.end();
    })().catch((err: unknown) => console.error("sampler:", err));
    if (STATEMENTS) await pool.query("SELECT pg_stat_statements_reset()");
    const scans0 = await tableScans(pool);
    const wal0 = await walStats(pool);
    const lsn0 = WAL_RECORDS ? (await pool.query<{ l: string }>("SELECT pg_current_wal_insert_lsn()::text AS l")).rows[0]!.l : "";
    const cpu0 = process.cpuUsage();
    const pg0 = postgresTicks(db.port);
    const r = await loadFor(CLIENTS, SECONDS * 1000, (w, i) => (side === "baseline" ? baselinePair(pool, user(w, i)) : meterPair(meter, user(w, i))));
    const cpu = process.cpuUsage(cpu0);
    const pgTicks = postgresTicks(db.port) - pg0;
    const wal1 = await walStats(pool);
    const scans1 = await tableScans(pool);
    const lsn1 = WAL_RECORDS ? (await pool.query<{ l: string }>("SELECT pg_current_wal_insert_lsn()::text AS l")).rows[0]!.l : "";
    loop.disable();
    sampling = false;
    await sampler;
    if (waits.size > 0) console.log(`active backends by wait (samples): ${[...waits.entries()].sort((a, b) => b[1] - a[1]).map(([w, n]) => `${w} ${n}`).join(", ")}`);
    const ops = r.ops * 2;
    console.log(`\n## rep ${rep}: ${side}, ${MODE}, ${CLIENTS} clients, ${SECONDS}s${side === "batched" ? `, batch ${JSON.stringify(BATCH)}` : ""}`);
    console.log(`pairs/s ${(r.ops / r.seconds).toFixed(0)}; reserve p50/p99 ${percentile(r.latencies, 50).toFixed(2)} / ${percentile(r.latencies, 99).toFixed(2)} ms`);
    console.log(`Node CPU ${(((cpu.user + cpu.system) / ops)).toFixed(0)} µs/op (user ${(cpu.user / ops).toFixed(0)}, system ${(cpu.system / ops).toFixed(0)}); Postgres CPU ${((pgTicks * 10_000) / ops).toFixed(0)} µs/op; CPU busy ${(((cpu.user + cpu.system) / 1e6 + pgTicks / 100) / r.seconds).toFixed(2)} cores`);
    console.log(
      `WAL per op: ${((wal1.bytes - wal0.bytes) / ops).toFixed(0)} bytes, ${((wal1.records - wal0.records) / ops).toFixed(1)} records, ` +
        `${((wal1.fpi - wal0.fpi) / ops).toFixed(2)} full-page images; ${((wal1.syncs - wal0.syncs) / r.seconds).toFixed(0)} WAL flushes/s, ` +
        `${((wal1.bytes - wal0.bytes) / Math.max(1, wal1.syncs - wal0.syncs) / 1024).toFixed(1)} KiB each, ` +
        `${((wal1.syncMs - wal0.syncMs) / Math.max(1, wal1.syncs - wal0.syncs)).toFixed(2)} ms each`,
    );
    console.log(
      `scans per op (sequential scans / rows they read / index scans): ${[...scans1.entries()]
        .map(([t, b]) => [t, b.map((v, i) => (v - (scans0.get(t)?.[i] ?? 0)) / ops)] as const)
        .filter(([, d]) => d.some((v) => v > 0.005))
        .map(([t, d]) => `${t} ${d.map((v) => v.toFixed(2)).join(" / ")}`)
        .join("; ")}`,
    );
    console.log(`event-loop delay p50/p99 ${(loop.percentile(50) / 1e6).toFixed(2)} / ${(loop.percentile(99) / 1e6).toFixed(2)} ms`);
    if (stats) {
      console.log(`statements: ${JSON.stringify(Object.fromEntries(stats.statements))}; waited for a connection ${(stats.waitMs / stats.connects).toFixed(3)} ms/statement, in flight ${(stats.flightMs / stats.connects).toFixed(2)} ms/statement`);
      // How many batches were in flight, as a share of the timed run's wall time.
      const ev = stats.spans.flatMap(([a, b]) => [[a, 1], [b, -1]] as [number, number][]).sort((x, y) => x[0] - y[0]);
      const share = new Map<number, number>();
      let k = 0;
      for (let i = 0; i + 1 < ev.length; i++) {
        k += ev[i]![1];
        share.set(k, (share.get(k) ?? 0) + ev[i + 1]![0] - ev[i]![0]);
      }
      const span = ev.length > 0 ? ev[ev.length - 1]![0] - ev[0]![0] : 1;
      console.log(`batches in flight (share of time): ${[...share.entries()].sort((a, b) => a[0] - b[0]).map(([n, t]) => `${n}: ${((100 * t) / span).toFixed(0)}%`).join(", ")}`);
      const sizes = [...stats.sizes.entries()].sort((a, b) => a[0] - b[0]);
      const total = sizes.reduce((s, [n, c]) => s + n * c, 0);
      console.log(`batch sizes (size: batches): ${sizes.map(([n, c]) => `${n}:${c}`).join(" ")}; mean ${(total / sizes.reduce((s, [, c]) => s + c, 0)).toFixed(1)} ops`);
    }
    if (WAL_RECORDS) await printWalRecords(pool, lsn0, lsn1, ops);
    if (STATEMENTS) {
      const batches = stats?.statements.get("op_batch") ?? 0;
      await printStatements(pool, batches > 0 ? { n: batches, per: "op_batch call" } : { n: ops, per: "operation" });
    }
  }
  await pool.end();
  for (const m of meters.values()) if (m !== unbatched) await m.close();
  await unbatched.close();
} finally {
  await db.stop();
}
