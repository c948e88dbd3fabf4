import pg from "pg";
import { afterAll, beforeAll, expect, test } from "vitest";
import { createMeter } from "../../src/server/index.js";
import { migrationFiles } from "../../src/server/migrate.js";
import { freshDatabase } from "../helpers/db.js";
import { TEST_PLANS } from "../helpers/meter.js";

let db: { url: string; drop: () => Promise<void> };
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => {
  await db.drop();
});

test("migrations are numbered .sql files applied in order", async () => {
  const files = await migrationFiles();
  expect(files.length).toBeGreaterThan(0);
  expect(files.map((f) => f.id)).toEqual([...files.map((f) => f.id)].sort((a, b) => a - b));
  expect(files[0]!.name).toBe("0001_ledger.sql");
});

test("four migrators running at once apply each migration exactly once, and a rerun is a no-op", async () => {
  const meters = Array.from({ length: 4 }, () => createMeter({ database: db.url, plans: TEST_PLANS, schema: "race", sweepInterval: 0 }));
  const applied = await Promise.all(meters.map((m) => m.migrate()));
  const files = await migrationFiles();
  expect(applied.flat().sort()).toEqual(files.map((f) => f.name).sort());
  expect(await meters[0]!.migrate()).toEqual([]);
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  const { rows } = await c.query<{ n: string }>("SELECT count(*) AS n FROM race.migrations");
  expect(Number(rows[0]!.n)).toBe(files.length);
  await c.end();
  await Promise.all(meters.map((m) => m.close()));
});

test("two meters in two schemas of one database keep separate ledgers", async () => {
  const a = createMeter({ database: db.url, plans: TEST_PLANS, schema: "tenant_a", sweepInterval: 0 });
  const b = createMeter({ database: db.url, plans: TEST_PLANS, schema: "tenant_b", sweepInterval: 0 });
  await a.migrate();
  await b.migrate();
  await a.upsertSubscription({ userId: "u", planId: "free" });
  await b.upsertSubscription({ userId: "u", planId: "free" });
  await a.track("u", "tokens", 300);
  expect((await a.usage("u")).counters[0]!.used).toBe(300);
  expect((await b.usage("u")).counters[0]!.used).toBe(0);
  await a.close();
  await b.close();
});

test("a meter that was never migrated says to run migrate()", async () => {
  const m = createMeter({ database: db.url, plans: TEST_PLANS, schema: "never", sweepInterval: 0 });
  await expect(m.usage("u")).rejects.toMatchObject({ code: "internal", message: expect.stringContaining("migrate()") });
  await m.close();
});

test("an unreachable database is `unavailable`, not a crash", async () => {
  const m = createMeter({ database: "postgres://postgres:postgres@127.0.0.1:1/none", plans: TEST_PLANS, sweepInterval: 0 });
  await expect(m.usage("u")).rejects.toMatchObject({ code: "unavailable" });
  await m.close();
});
