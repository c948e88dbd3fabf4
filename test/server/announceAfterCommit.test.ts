import pg from "pg";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { internalsOf } from "../../src/server/internals.js";
import { testMeter, type TestMeter } from "../helpers/meter.js";

/*
 * docs/server.md: the ledger never NOTIFYs inside its transaction (a notifying transaction
 * takes Postgres's database-wide notify lock at commit and holds it through the WAL flush, so
 * every notifying commit queues behind it). Announcements go out after commit through the
 * meter's notifier. These tests call the ledger functions in plain SQL, where no notifier
 * runs: whatever the listener hears then came from inside the transaction.
 */

let t: TestMeter;
let listener: pg.Client;
let sql: pg.Client;
let heard: string[] = [];
let channel: string;

beforeAll(async () => {
  t = await testMeter({ holdTtl: 60_000 });
  channel = internalsOf(t.meter).channel;
  listener = new pg.Client({ connectionString: t.url });
  sql = new pg.Client({ connectionString: t.url });
  await Promise.all([listener.connect(), sql.connect()]);
  listener.on("notification", (n) => heard.push(n.payload ?? ""));
  await listener.query(`LISTEN "${channel}"`);
});
afterAll(async () => {
  await Promise.all([listener.end(), sql.end()]);
  await t.cleanup();
});

/**
 * What the listener heard up to a sentinel sent from `sql` after its last statement. Postgres
 * delivers notifications in commit order, so anything the statements before it announced
 * arrives before the sentinel: no waiting for a silence that proves nothing.
 */
async function heardBeforeSentinel(): Promise<string[]> {
  const sentinel = `sentinel_${heard.length}_${Date.now()}`;
  await sql.query("SELECT pg_notify($1, $2)", [channel, sentinel]);
  for (let i = 0; i < 200 && !heard.includes(sentinel); i++) await new Promise((r) => setTimeout(r, 10));
  const at = heard.indexOf(sentinel);
  expect(at, "the sentinel arrives").toBeGreaterThanOrEqual(0);
  const before = heard.slice(0, at);
  heard = heard.slice(at + 1);
  return before;
}

describe("every ledger path announces after commit, never inside its transaction", () => {
  test("op_subscribe called in SQL notifies no one (the caller announces)", async () => {
    await heardBeforeSentinel();
    await sql.query("SELECT meterkit.op_subscribe($1, 'free', NULL, NULL)", ["u_sql_sub"]);
    expect(await heardBeforeSentinel()).toEqual([]);
  });

  test("op_sweep called in SQL notifies no one (the caller announces)", async () => {
    await t.meter.upsertSubscription({ userId: "u_sql_sweep", planId: "free" });
    const r = await t.meter.reserve("u_sql_sweep", "llm.tokens", 10, { ttl: 1_000 });
    expect(r.allowed).toBe(true);
    await internalsOf(t.meter).notifier.flush();
    await heardBeforeSentinel();
    // This session's database clock, past the hold's expiry.
    await sql.query("SELECT set_config('meterkit.clock', $1, false)", [new Date(Date.now() + 120_000).toISOString()]);
    await sql.query("SELECT meterkit.op_sweep(1000)");
    await sql.query("SELECT set_config('meterkit.clock', '', false)");
    expect(await heardBeforeSentinel()).toEqual([]);
  });

  test("meter.upsertSubscription announces the user after commit", async () => {
    await heardBeforeSentinel();
    await t.meter.upsertSubscription({ userId: "u_api_sub", planId: "pro" });
    await internalsOf(t.meter).notifier.flush();
    expect(await heardBeforeSentinel()).toEqual(["u_api_sub"]);
  });

  test("meter.usage announces no one: a read is not a change", async () => {
    await t.meter.upsertSubscription({ userId: "u_api_read", planId: "free" });
    await internalsOf(t.meter).notifier.flush();
    await heardBeforeSentinel();
    // Every live stream re-reads its user's Usage when that user is announced: a read that
    // announced itself would have each open stream re-read for ever.
    await t.meter.usage("u_api_read");
    await internalsOf(t.meter).notifier.flush();
    expect(await heardBeforeSentinel()).toEqual([]);
  });

  test("meter.sweepExpired announces every swept user once, after commit", async () => {
    for (const u of ["u_api_sweep_1", "u_api_sweep_2"]) {
      await t.meter.upsertSubscription({ userId: u, planId: "free" });
      await t.meter.reserve(u, "llm.tokens", 10, { ttl: 500 });
      await t.meter.reserve(u, "llm.tokens", 20, { ttl: 500 });
    }
    await new Promise((r) => setTimeout(r, 600));
    await internalsOf(t.meter).notifier.flush();
    await heardBeforeSentinel();
    expect(await t.meter.sweepExpired()).toBe(4);
    await internalsOf(t.meter).notifier.flush();
    expect((await heardBeforeSentinel()).sort()).toEqual(["u_api_sweep_1", "u_api_sweep_2"]);
    expect(await t.meter.sweepExpired()).toBe(0);
  });
});
