/**
 * `npx tsx tools/ledgerPairCpu.ts`: backend CPU µs per reserve and per commit, each its own
 * transaction (as a client runs them), over 10,000 users, on a schema migrated up to
 * `COST_BEFORE` (default 36) and one with every migration, in interleaved rounds of `PAIRS`
 * (default 500) pairs, `ROUNDS` (default 8) rounds. CPU time comes from /proc/<pid>/schedstat
 * of each schema's own backend, so load elsewhere barely moves it (unlike wall time); it
 * includes parse/bind, the function, and the commit's own work (`synchronous_commit = off`:
 * the WAL flush's kernel time would swamp it). Each round also runs bench/util.ts's bare
 * conditional UPDATE pair the same way, as the floor. `HOT_USER=1`: every pair on one user
 * (sequential, so one hold is open at a time). With no migration after `COST_BEFORE` both
 * schemas are the same: set it to the migration before the one under test.
 */
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import pg from "pg";
import { buildLedgerSchema } from "./buildLedgerSchema.js";
import { startEmbeddedPostgres } from "../src/testing/startEmbeddedPostgres.js";

const PAIRS = Number(process.env.PAIRS ?? 500);
const ROUNDS = Number(process.env.ROUNDS ?? 8);
const BEFORE = Number(process.env.COST_BEFORE ?? 36);
const USERS = process.env.HOT_USER ? 1 : 10_000;
const db = await startEmbeddedPostgres({ settings: { shared_buffers: "256MB" } });
const admin = new pg.Pool({ connectionString: db.url, max: 2 });
async function build(schema: string, maxId: number): Promise<pg.Client> {
  await buildLedgerSchema(admin, db.url, schema, maxId, USERS);
  const client = new pg.Client({ connectionString: db.url, application_name: schema });
  await client.connect();
  await client.query(`SET search_path TO ${schema}, pg_catalog`);
  // No WAL flush wait: its CPU (in the kernel) would swamp the function's own.
  await client.query("SET synchronous_commit = off");
  return client;
}
async function cpuNs(app: string): Promise<number> {
  const { rows } = await admin.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = $1", [app]);
  return Number(readFileSync(`/proc/${rows[0]!.pid}/schedstat`, "utf8").split(" ")[0]);
}
const schemas = { a_before: await build("a_before", BEFORE), b_after: await build("b_after", 9999) };
// The floor: bench/util.ts's bare conditional UPDATE pair, same users, same transactions.
await admin.query(`CREATE TABLE bench_baseline (user_id text PRIMARY KEY, quota bigint NOT NULL, used bigint NOT NULL DEFAULT 0, held bigint NOT NULL DEFAULT 0);
  INSERT INTO bench_baseline (user_id, quota) SELECT 'u' || i, 1e15 FROM generate_series(0, ${USERS - 1}) i`);
const base = new pg.Client({ connectionString: db.url, application_name: "baseline" });
await base.connect();
await base.query("SET synchronous_commit = off");
const baseline = { reserve: [] as number[], commit: [] as number[] };
const res: Record<string, { reserve: number[]; commit: number[] }> = { a_before: { reserve: [], commit: [] }, b_after: { reserve: [], commit: [] } };
console.log(`load ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
let n = 0;
for (let round = 0; round < ROUNDS; round++) {
  for (const schema of (round % 2 ? ["b_after", "a_before"] : ["a_before", "b_after"]) as Array<keyof typeof schemas>) {
    const c = schemas[schema];
    let reserveNs = 0;
    let commitNs = 0;
    for (let i = 0; i < PAIRS; i++) {
      const u = `u${(n++ * 7919) % USERS}`;
      const id = `rsv_${n.toString(16).padStart(28, "0")}_${u}`;
      let t = await cpuNs(schema);
      await c.query({ name: "r", text: "SELECT op_reserve($1, 'tokens', 'tokens', 1000, 600000, NULL, NULL, $2, NULL, NULL, NULL)", values: [u, id] });
      let t2 = await cpuNs(schema);
      reserveNs += t2 - t;
      t = t2;
      await c.query({ name: "c", text: "SELECT op_resolve($1, false, 400, NULL)", values: [id] });
      t2 = await cpuNs(schema);
      commitNs += t2 - t;
    }
    res[schema]!.reserve.push(reserveNs / 1000 / PAIRS);
    res[schema]!.commit.push(commitNs / 1000 / PAIRS);
  }
  let reserveNs = 0;
  let commitNs = 0;
  for (let i = 0; i < PAIRS; i++) {
    const u = `u${(n++ * 7919) % USERS}`;
    let t = await cpuNs("baseline");
    await base.query({ name: "r", text: "UPDATE bench_baseline SET held = held + $2 WHERE user_id = $1 AND quota - used - held >= $2 RETURNING quota - used - held AS remaining", values: [u, 1000] });
    let t2 = await cpuNs("baseline");
    reserveNs += t2 - t;
    t = t2;
    await base.query({ name: "c", text: "UPDATE bench_baseline SET held = held - $2, used = used + $3 WHERE user_id = $1", values: [u, 1000, 400] });
    t2 = await cpuNs("baseline");
    commitNs += t2 - t;
  }
  baseline.reserve.push(reserveNs / 1000 / PAIRS);
  baseline.commit.push(commitNs / 1000 / PAIRS);
}
res.baseline = baseline;
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
for (const [s, r] of Object.entries(res)) {
  console.log(`${s} reserve CPU µs ${r.reserve.map((x) => x.toFixed(0)).join(" · ")} (median ${median(r.reserve).toFixed(0)}) | commit CPU µs ${r.commit.map((x) => x.toFixed(0)).join(" · ")} (median ${median(r.commit).toFixed(0)})`);
}
console.log(`load ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
for (const c of Object.values(schemas)) await c.end();
await base.end();
await admin.end(); await db.stop();
