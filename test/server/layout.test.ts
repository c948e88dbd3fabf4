import pg from "pg";
import { afterAll, beforeAll, expect, test } from "vitest";
import { createMeter } from "../../src/server/index.js";
import { freshDatabase } from "../helpers/db.js";
import { PARTITIONED } from "../helpers/layout.js";
import { GLOBAL_TABLES, PARTITIONS } from "../helpers/partitionByUser.js";
import { TEST_PLANS, testMeter, type TestMeter } from "../helpers/meter.js";

// The node-partitioned project reruns the ledger suites with MK_TEST_LAYOUT=partitioned: this
// checks the switch reaches every meter.migrate(), through the helpers or a test's own createMeter.
let t: TestMeter;
beforeAll(async () => {
  t = await testMeter();
});
afterAll(async () => {
  await t.cleanup();
});

async function layout(url: string, schema: string): Promise<Record<string, string>> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query<{ name: string; kind: string; parts: number }>(
      `SELECT c.relname AS name, c.relkind AS kind, (SELECT count(*)::int FROM pg_inherits i WHERE i.inhparent = c.oid) AS parts
       FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'user_id'
       WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition`,
      [schema],
    );
    return Object.fromEntries(rows.map((r) => [r.name, r.kind === "p" ? `partitioned ${r.parts}` : "plain"]));
  } finally {
    await c.end();
  }
}

const expected = (names: string[]) =>
  Object.fromEntries(names.map((n) => [n, PARTITIONED && !Object.hasOwn(GLOBAL_TABLES, n) ? `partitioned ${PARTITIONS}` : "plain"]));

test(`the per-user tables are ${PARTITIONED ? "hash-partitioned by user id" : "plain"} (MK_TEST_LAYOUT=${process.env.MK_TEST_LAYOUT ?? ""})`, async () => {
  const got = await layout(t.url, "meterkit");
  expect(Object.keys(got)).toEqual(expect.arrayContaining(["entries", "holds", "grants", "balances", "subscriptions"]));
  expect(got).toEqual(expected(Object.keys(got)));
});

test("a meter a test creates itself migrates onto the same layout, in any schema", async () => {
  const db = await freshDatabase();
  const meter = createMeter({ database: db.url, plans: TEST_PLANS, sweepInterval: 0, schema: "other" });
  try {
    await meter.migrate();
    const got = await layout(db.url, "other");
    expect(got).toEqual(expected(Object.keys(got)));
    await meter.upsertSubscription({ userId: "u1", planId: "free" });
    expect((await meter.track("u1", "tokens", 5)).remaining).toBe(995);
    expect(await meter.audit()).toEqual([]);
  } finally {
    await meter.close();
    await db.drop();
  }
});
