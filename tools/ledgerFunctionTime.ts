/**
 * `npx tsx tools/ledgerFunctionTime.ts`: µs per call of op_reserve and op_resolve (commit)
 * inside Postgres, the functions alone (no network, no per-call commit): 3,000 reserves in one
 * statement, then their 3,000 commits in another, over 10,000 users, in rounds alternating a
 * schema migrated up to `COST_BEFORE` (default 35) and one with every migration, so load
 * elsewhere hits both alike. `ROUNDS` (default 10) rounds; prints every round (compare medians).
 */
import pg from "pg";
import { buildLedgerSchema } from "./buildLedgerSchema.js";
import { startEmbeddedPostgres } from "../src/testing/startEmbeddedPostgres.js";
const N = 3000;
const USERS = 10_000;
const ROUNDS = Number(process.env.ROUNDS ?? 10);
const BEFORE = Number(process.env.COST_BEFORE ?? 35);
const db = await startEmbeddedPostgres({ settings: { shared_buffers: "256MB", max_locks_per_transaction: "256" } });
const admin = new pg.Pool({ connectionString: db.url, max: 2 });
await buildLedgerSchema(admin, db.url, "a_before", BEFORE, USERS);
await buildLedgerSchema(admin, db.url, "b_after", 9999, USERS);
const res: Record<string, { reserve: number[]; commit: number[] }> = { a_before: { reserve: [], commit: [] }, b_after: { reserve: [], commit: [] } };
console.log(`load ${(await import("node:os")).loadavg().map((l) => l.toFixed(2)).join(" ")}`);
for (let round = 0; round < ROUNDS; round++) {
  for (const schema of round % 2 ? ["b_after", "a_before"] : ["a_before", "b_after"]) {
    const c = await admin.connect();
    await c.query(`SET search_path TO ${schema}, pg_catalog`);
    const ids = `(SELECT i, 'u' || ((i * 7919 + ${round}) % ${USERS}) AS u, 'rsv_' || lpad(to_hex(${round} * 100000 + i), 28, '0') || '_u' || ((i * 7919 + ${round}) % ${USERS}) AS id FROM generate_series(1, ${N}) i) x`;
    let t = performance.now();
    await c.query("BEGIN");
    await c.query(`SELECT count(op_reserve(u, 'tokens', 'tokens', 1000, 600000, NULL, NULL, id, NULL, NULL, NULL)) FROM ${ids}`);
    await c.query("COMMIT");
    res[schema]!.reserve.push(((performance.now() - t) * 1000) / N);
    t = performance.now();
    await c.query("BEGIN");
    await c.query(`SELECT count(op_resolve(id, false, 400, NULL)) FROM ${ids}`);
    await c.query("COMMIT");
    res[schema]!.commit.push(((performance.now() - t) * 1000) / N);
    c.release();
  }
}
for (const [s, r] of Object.entries(res)) console.log(s, "reserve µs", r.reserve.map((x) => x.toFixed(0)).join(" · "), "| commit µs", r.commit.map((x) => x.toFixed(0)).join(" · "));
console.log(`load ${(await import("node:os")).loadavg().map((l) => l.toFixed(2)).join(" ")}`);
await admin.end(); await db.stop();
