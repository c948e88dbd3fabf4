import pg from "pg";
import { afterAll, beforeAll, expect, test } from "vitest";
import { createMeter } from "../../src/server/index.js";
import { migrationFiles } from "../../src/server/migrate.js";
import { freshDatabase } from "../helpers/db.js";
import { TEST_PLANS } from "../helpers/meter.js";
import { partitionByUser } from "../helpers/partitionByUser.js";

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

test("a database migrated by 0.1 (0001–0003) upgrades in place: old debts move out of grants and are collected once", async () => {
  // Apply the 0.1 migrations by hand, as a released install has them.
  const old = (await migrationFiles()).filter((f) => f.id <= 3);
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  await c.query("CREATE SCHEMA upgrade; CREATE TABLE upgrade.migrations (id int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())");
  for (const f of old) {
    await c.query("BEGIN");
    await c.query("SET LOCAL search_path TO upgrade, pg_catalog");
    await c.query(f.sql);
    await c.query("INSERT INTO upgrade.migrations (id, name) VALUES ($1, $2)", [f.id, f.name]);
    await c.query("COMMIT");
  }
  // 0.1 state: a user owes 300 as a negative "debt grant" and has since bought a 1,000 pack
  // (which 0.1 left at 1,000 while the debt kept withholding 300).
  await c.query(`
    SET search_path TO upgrade, pg_catalog;
    INSERT INTO plans VALUES ('free', 'Free');
    INSERT INTO limit_groups VALUES ('free', 'tokens', 'Tokens', 'tokens', NULL, 1000, 'month', 'calendar', 'record');
    INSERT INTO subscriptions (user_id, plan_id, started_at) VALUES ('u', 'free', now());
    INSERT INTO grants (id, user_id, counter_key, amount, remaining, source, metadata)
      VALUES ('debt_old', 'u', 'tokens', -300, -300, 'debt', '{"paymentIntent": "pi_1", "grantId": "grt_1"}');
    INSERT INTO entries (user_id, counter_key, kind, amount, grant_id, metadata) VALUES ('u', 'tokens', 'grant', -300, 'debt_old', '{"source": "debt"}');
    INSERT INTO grants (id, user_id, counter_key, amount, remaining, source) VALUES ('grt_2', 'u', 'tokens', 1000, 1000, 'stripe');
    INSERT INTO entries (user_id, counter_key, kind, amount, grant_id) VALUES ('u', 'tokens', 'grant', 1000, 'grt_2');
    RESET search_path;`);
  const meter = createMeter({ database: db.url, plans: TEST_PLANS, schema: "upgrade", sweepInterval: 0 });
  const before = await meter.usage("u");
  expect(before.counters[0]).toMatchObject({ granted: 700, remaining: 1700 });
  expect(await meter.migrate()).toEqual((await migrationFiles()).filter((f) => f.id > 3).map((f) => f.name));
  // Same spendable credit as before, but the debt is settled: it no longer withholds anything.
  const after = await meter.usage("u");
  expect(after.counters[0]).toMatchObject({ granted: 700, remaining: 1700 });
  expect(after.counters[0]).not.toHaveProperty("debt");
  const { rows } = await c.query("SELECT id, amount, remaining FROM upgrade.debts");
  expect(rows).toEqual([{ id: "debt_old", amount: "300", remaining: "0" }]);
  expect((await c.query("SELECT count(*)::int AS n FROM upgrade.grants WHERE amount < 0")).rows[0].n).toBe(0);
  expect(await meter.audit()).toEqual([]);
  // The ledger works on the upgraded schema.
  await meter.track("u", "tokens", 1500);
  expect((await meter.usage("u")).counters[0]).toMatchObject({ used: 1500, remaining: 200 });
  expect(await meter.audit()).toEqual([]);
  await c.end();
  await meter.close();
});

test("a database partitioned by user before 0036 (docs/scale.md) takes the later migrations in place", async () => {
  // Up to 0035 by hand, then the layout docs/scale.md describes, then an upgrade.
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  await c.query("CREATE SCHEMA parted; CREATE TABLE parted.migrations (id int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())");
  for (const f of (await migrationFiles()).filter((f) => f.id <= 35)) {
    await c.query("BEGIN");
    await c.query("SET LOCAL search_path TO parted, pg_catalog, pg_temp");
    await c.query(f.sql);
    await c.query("INSERT INTO parted.migrations (id, name) VALUES ($1, $2)", [f.id, f.name]);
    await c.query("COMMIT");
  }
  await partitionByUser(db.url, "parted");
  const meter = createMeter({ database: db.url, plans: TEST_PLANS, schema: "parted", sweepInterval: 0 });
  expect(await meter.migrate()).toEqual((await migrationFiles()).filter((f) => f.id > 35).map((f) => f.name));
  await meter.upsertSubscription({ userId: "u", planId: "free" });
  const r = await meter.reserve("u", "tokens", 100);
  if (!r.allowed) throw new Error("denied");
  await meter.commit(r.reservationId, { actual: 40 });
  expect((await meter.usage("u")).counters.find((k) => k.key === "tokens")).toMatchObject({ used: 40, held: 0 });
  expect(await meter.audit()).toEqual([]);
  await meter.close();
  await c.end();
});
