/**
 * `npx tsx tools/ledgerCost.ts`: what one ledger operation costs inside Postgres, before and
 * after a migration, in the same run on the same server. `COST_BEFORE` is the last migration of
 * the "before" schema (default 35: before 0036 lean writes; 29 compares with 0.1.0's functions).
 *
 * Starts its own embedded PostgreSQL (fsync on) with pg_stat_statements (track = all), builds
 * two schemas (migrations up to 0020, and all of them), and runs each operation N times on one
 * connection over 10,000 users: statements executed (top level + nested), CPU µs of the serving
 * backend (/proc schedstat: includes parse, plan, commit; barely moved by load elsewhere), wall
 * µs inside Postgres (pg_stat_statements, top-level), µs seen by Node, WAL bytes / records / full-page images per
 * operation, and rows written per table (inserts, updates, of which HOT).
 */
import { readFileSync } from "node:fs";
import pg from "pg";
import { createMeter, type Meter } from "../src/server/index.js";
import { migrationFiles } from "../src/server/migrate.js";
import { startEmbeddedPostgres } from "../src/testing/startEmbeddedPostgres.js";

const N = Number(process.env.COST_OPS ?? 2000);
const BEFORE = Number(process.env.COST_BEFORE ?? 35);
const USERS = 10_000;
const PLANS = { bench: { limits: { tokens: { quota: 1e15, period: "none" as const }, tokens_out: { quota: 1e15, period: "none" as const } } } };

async function migrateUpTo(pool: pg.Pool, schema: string, maxId: number): Promise<void> {
  const c = await pool.connect();
  try {
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema}`);
    await c.query(`CREATE TABLE ${schema}.migrations (id int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    for (const f of await migrationFiles()) {
      if (f.id > maxId) continue;
      await c.query("BEGIN");
      await c.query(`SET LOCAL search_path TO ${schema}, pg_catalog`);
      await c.query(f.sql);
      await c.query(`INSERT INTO ${schema}.migrations (id, name) VALUES ($1, $2)`, [f.id, f.name]);
      await c.query("COMMIT");
    }
  } finally {
    c.release();
  }
}

interface Cost {
  op: string;
  statements: number;
  pgUs: number;
  cpuUs: number;
  nodeUs: number;
  walBytes: number;
  walRecords: number;
  walFpi: number;
  rows: string;
  /** WAL records per operation by type (pg_walinspect): btree inserts are the index writes. */
  records: string;
}

/** CPU time the backend serving `application_name` has used, in ns (/proc/<pid>/schedstat): unlike wall time, load elsewhere barely moves it. */
async function backendCpuNs(admin: pg.Pool, app: string): Promise<number> {
  const { rows } = await admin.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = $1", [app]);
  if (rows.length !== 1) throw new Error(`expected one backend for ${app}, found ${rows.length}`);
  return Number(readFileSync(`/proc/${rows[0]!.pid}/schedstat`, "utf8").split(" ")[0]);
}

async function measure(admin: pg.Pool, schema: string, op: string, run: (i: number) => Promise<unknown>): Promise<Cost> {
  await admin.query("CHECKPOINT");
  await new Promise((r) => setTimeout(r, 1200)); // let the meter's backend flush its table stats
  const tables = async () =>
    new Map(
      (await admin.query<{ relname: string; ins: string; upd: string; hot: string }>(
        `SELECT relname, n_tup_ins AS ins, n_tup_upd AS upd, n_tup_hot_upd AS hot FROM pg_stat_user_tables WHERE schemaname = $1`,
        [schema],
      )).rows.map((r) => [r.relname, r]),
    );
  const before = await tables();
  await admin.query("SELECT pg_stat_statements_reset()");
  const lsn0 = (await admin.query<{ lsn: string }>("SELECT pg_current_wal_insert_lsn() AS lsn")).rows[0]!.lsn;
  const cpu0 = await backendCpuNs(admin, schema);
  const t0 = performance.now();
  for (let i = 0; i < N; i++) await run(i);
  const nodeUs = ((performance.now() - t0) * 1000) / N;
  const cpuUs = (await backendCpuNs(admin, schema) - cpu0) / 1000 / N;
  const lsn1 = (await admin.query<{ lsn: string }>("SELECT pg_current_wal_insert_lsn() AS lsn")).rows[0]!.lsn;
  await new Promise((r) => setTimeout(r, 1200));
  // Records written while the operations ran (the server runs nothing else but autovacuum).
  const records = (
    await admin.query<{ t: string; n: string }>(
      `SELECT "resource_manager/record_type" AS t, count AS n FROM pg_get_wal_stats($1, $2, true)
        WHERE count > 0 AND "resource_manager/record_type" !~ '^(XLOG|Standby|Storage|RelMap|CLOG|MultiXact)/'
        ORDER BY count DESC`,
      [lsn0, lsn1],
    )
  ).rows.map((r) => `${r.t} ${(Number(r.n) / N).toFixed(2)}`).join(", ");
  const s = (
    await admin.query<{ top_calls: string; top_ms: string; nested: string; wal_bytes: string; wal_records: string; wal_fpi: string }>(
      `SELECT sum(calls) FILTER (WHERE toplevel) AS top_calls, sum(total_exec_time) FILTER (WHERE toplevel) AS top_ms,
              sum(calls) FILTER (WHERE NOT toplevel) AS nested,
              sum(wal_bytes) FILTER (WHERE toplevel) AS wal_bytes, sum(wal_records) FILTER (WHERE toplevel) AS wal_records,
              sum(wal_fpi) FILTER (WHERE toplevel) AS wal_fpi
         FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND (NOT toplevel OR query ~ $1)`,
      [`${schema}"?\\.op_`],
    )
  ).rows[0]!;
  const after = await tables();
  const rows: string[] = [];
  for (const [name, a] of after) {
    const b = before.get(name)!;
    const ins = (Number(a.ins) - Number(b.ins)) / N;
    const upd = (Number(a.upd) - Number(b.upd)) / N;
    const hot = (Number(a.hot) - Number(b.hot)) / N;
    if (ins || upd) rows.push(`${name}${ins ? ` +${ins.toFixed(2)}` : ""}${upd ? ` ~${upd.toFixed(2)}${hot ? ` (HOT ${hot.toFixed(2)})` : ""}` : ""}`);
  }
  const calls = Number(s.top_calls);
  return {
    op,
    statements: Number(s.nested) / calls,
    pgUs: (Number(s.top_ms) * 1000) / calls,
    cpuUs,
    nodeUs,
    walBytes: Number(s.wal_bytes) / calls,
    walRecords: Number(s.wal_records) / calls,
    walFpi: Number(s.wal_fpi) / calls,
    rows: rows.join(", "),
    records,
  };
}

async function profile(url: string, admin: pg.Pool, schema: string, maxId: number): Promise<Cost[]> {
  await migrateUpTo(admin, schema, maxId);
  const meter: Meter = createMeter({ database: `${url}?application_name=${schema}`, plans: PLANS, schema, poolSize: 1, sweepInterval: 0 });
  try {
    await meter.reservation("sync"); // syncs the plans (first use)
    await admin.query(`INSERT INTO ${schema}.subscriptions (user_id, plan_id, started_at)
                       SELECT 'u' || i, 'bench', now() FROM generate_series(0, ${USERS - 1}) i`);
    const user = (i: number) => `u${(i * 7919) % USERS}`;
    // Warm-up: plans cached, the balance row of every user measured present.
    for (let i = 0; i < N + 1; i++) {
      const r = await meter.reserve(user(i), "tokens", 1000);
      if (r.allowed) await meter.commit(r.reservationId, { actual: 400 });
    }
    const ids: string[] = [];
    const out: Cost[] = [];
    out.push(await measure(admin, schema, "reserve", async (i) => {
      const r = await meter.reserve(user(i), "tokens", 1000);
      if (!r.allowed) throw new Error("denied");
      ids.push(r.reservationId);
    }));
    out.push(await measure(admin, schema, "commit", (i) => meter.commit(ids[i]!, { actual: 400 })));
    ids.length = 0;
    for (let i = 0; i < N; i++) {
      const r = await meter.reserve(user(i + 1), "tokens", 1000);
      if (r.allowed) ids.push(r.reservationId);
    }
    out.push(await measure(admin, schema, "release", (i) => meter.release(ids[i]!)));
    out.push(await measure(admin, schema, "track", (i) => meter.track(user(i), "tokens", 10)));
    ids.length = 0;
    out.push(await measure(admin, schema, "reserve 2 counters", async (i) => {
      const r = await meter.reserve(user(i), { tokens: 1000, tokens_out: 500 });
      if (!r.allowed) throw new Error("denied");
      ids.push(r.reservationId);
    }));
    out.push(await measure(admin, schema, "commit 2 counters", (i) => meter.commit(ids[i]!, { actual: { tokens: 400, tokens_out: 200 } })));
    const audit = await meter.audit();
    if (audit.length) throw new Error(`${schema}: audit found ${audit.length} differences`);
    return out;
  } finally {
    await meter.close();
  }
}

const db = await startEmbeddedPostgres({
  settings: { shared_preload_libraries: "pg_stat_statements", "pg_stat_statements.track": "all", shared_buffers: "256MB" },
});
const admin = new pg.Pool({ connectionString: db.url, max: 2 });
try {
  await admin.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
  await admin.query("CREATE EXTENSION IF NOT EXISTS pg_walinspect");
  const { loadavg } = await import("node:os");
  console.log(`# ledger cost per operation — ${new Date().toISOString()} — ${N} ops each, one connection, fsync on, before = migrations up to ${BEFORE}, load ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  const before = await profile(db.url, admin, "cost_before", BEFORE);
  const after = await profile(db.url, admin, "cost_after", 9999);
  console.log("| operation | statements | backend CPU µs | µs in Postgres | µs from Node | WAL bytes | WAL records | FPI | rows written per op |");
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (let i = 0; i < before.length; i++) {
    for (const [label, c] of [["before", before[i]!], ["after", after[i]!]] as const) {
      console.log(`| ${c.op} (${label}) | ${c.statements.toFixed(1)} | ${c.cpuUs.toFixed(0)} | ${c.pgUs.toFixed(0)} | ${c.nodeUs.toFixed(0)} | ${c.walBytes.toFixed(0)} | ${c.walRecords.toFixed(1)} | ${c.walFpi.toFixed(2)} | ${c.rows} |`);
    }
  }
  console.log("\nWAL records per operation, by type (pg_walinspect; Btree/INSERT_* = index entries written):");
  for (let i = 0; i < before.length; i++) {
    console.log(`- ${before[i]!.op}: before ${before[i]!.records}\n  after ${after[i]!.records}`);
  }
  console.log(`load after: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
} finally {
  await admin.end();
  await db.stop();
}
