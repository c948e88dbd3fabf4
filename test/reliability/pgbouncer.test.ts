import pg from "pg";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createMeter, createMeterHandler, type Meter, type MeterHandler } from "../../src/server/index.js";
import { freshDatabase } from "../helpers/db.js";
import { TEST_PLANS } from "../helpers/meter.js";
import { PGBOUNCER_MISSING, startPgBouncer, type PgBouncer } from "../helpers/pgbouncer.js";
import { SECRET } from "../http/fixtures.js";
import { listen, openSse } from "../http/fixtures.js";
import { internalsOf } from "../../src/server/internals.js";

// The ledger and the HTTP handler behind PgBouncer in transaction pooling mode: every statement
// may run on a different server connection, and many clients share few server connections.
// This works because the ledger takes only transaction-level advisory locks inside single
// statements; LISTEN needs a session, so live streams take a direct connection.
if (PGBOUNCER_MISSING) console.warn(PGBOUNCER_MISSING);

describe.skipIf(PGBOUNCER_MISSING !== null)("behind PgBouncer in transaction pooling mode", () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let bouncer: PgBouncer;
  let meter: Meter;
  let handler: MeterHandler<{ user?: string }>;
  const SERVER_CONNECTIONS = 6;

  beforeAll(async () => {
    db = await freshDatabase();
    bouncer = await startPgBouncer(db.url, { poolSize: SERVER_CONNECTIONS });
    meter = createMeter({
      database: bouncer.wrap(db.url),
      plans: { ...TEST_PLANS, race: { limits: { tokens: { quota: 0, period: "none" } } } },
      meters: { "llm.tokens": { counter: "tokens" } },
      poolSize: 48,
      sweepInterval: 0,
    });
    handler = createMeterHandler<{ user?: string }>(meter, {
      secretKeys: [SECRET],
      identify: (_r, ctx) => ctx?.user,
      live: { listenDatabase: db.url, heartbeat: 300 },
      onError: () => {},
    });
  });
  afterAll(async () => {
    await meter?.close();
    await bouncer?.stop();
    await db?.drop();
  });

  test("PgBouncer really pools in transaction mode with fewer server connections than clients", async () => {
    const admin = new pg.Client({ connectionString: bouncer.adminUrl });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ key: string; value: string }>("SHOW CONFIG");
      expect(rows.find((r) => r.key === "pool_mode")?.value).toBe("transaction");
      expect(Number(rows.find((r) => r.key === "default_pool_size")?.value)).toBe(SERVER_CONNECTIONS);
    } finally {
      await admin.end();
    }
  });

  test("migrate() applies every migration through PgBouncer, and a second migrate() applies none", async () => {
    const applied = await meter.migrate();
    expect(applied.length).toBeGreaterThan(0);
    expect(await Promise.all([meter.migrate(), meter.migrate()])).toEqual([[], []]);
  });

  test("reserve, commit with a refund, release and a repeated commit behave as on a direct connection", async () => {
    await meter.upsertSubscription({ userId: "pb-alice", planId: "free" });
    const a = await meter.reserve("pb-alice", "llm.tokens", 400);
    const b = await meter.reserve("pb-alice", "llm.tokens", 300);
    if (!a.allowed || !b.allowed) throw new Error("denied");
    expect(a.remaining).toBe(600);
    const c = await meter.commit(a.reservationId, { actual: 250 });
    expect(c).toMatchObject({ committed: 250, refunded: 150 });
    expect(await meter.commit(a.reservationId, { actual: 250 })).toEqual(c);
    await expect(meter.commit(a.reservationId, { actual: 999 })).rejects.toMatchObject({ code: "conflict", details: { reason: "committed", result: c } });
    expect(await meter.release(b.reservationId)).toMatchObject({ released: 300 });
    expect((await meter.usage("pb-alice")).counters[0]).toMatchObject({ used: 250, held: 0, remaining: 750 });
    expect(await meter.audit("pb-alice")).toEqual([]);
  });

  test("a hold expires by the database clock and a commit after that is a conflict", async () => {
    await meter.upsertSubscription({ userId: "pb-exp", planId: "free" });
    const r = await meter.reserve("pb-exp", "llm.tokens", 500, { ttl: 300 });
    if (!r.allowed) throw new Error("denied");
    expect((await meter.usage("pb-exp")).counters[0]!.held).toBe(500);
    await new Promise((res) => setTimeout(res, 400));
    expect((await meter.usage("pb-exp")).counters[0]!.held).toBe(0);
    await expect(meter.commit(r.reservationId, { actual: 10 })).rejects.toMatchObject({ code: "conflict", details: { reason: "expired" } });
    // The refused commit rolled back; the sweeper records the expiry, once.
    expect(await meter.sweepExpired()).toBe(1);
    expect(await meter.sweepExpired()).toBe(0);
    expect(await meter.audit("pb-exp")).toEqual([]);
  });

  test("idempotency keys hold across server connections: same key, one hold; other arguments, a conflict", async () => {
    await meter.upsertSubscription({ userId: "pb-idem", planId: "free" });
    const calls = await Promise.all(Array.from({ length: 12 }, () => meter.reserve("pb-idem", "llm.tokens", 100, { idempotencyKey: "k1" })));
    expect(new Set(calls.map((c) => (c.allowed ? c.reservationId : "denied"))).size).toBe(1);
    await expect(meter.reserve("pb-idem", "llm.tokens", 101, { idempotencyKey: "k1" })).rejects.toMatchObject({ code: "conflict" });
    const g = await Promise.all(Array.from({ length: 8 }, () => meter.grant("pb-idem", "tokens", 50, { idempotencyKey: "g1" })));
    expect(new Set(g.map((x) => x.grantId)).size).toBe(1);
    const u = (await meter.usage("pb-idem")).counters[0]!;
    expect(u).toMatchObject({ held: 100, granted: 50 });
  });

  test("48 concurrent reservers on 6 server connections: exactly N holds fit, every round", async () => {
    for (let round = 0; round < 6; round++) {
      const user = `pb-hot-${round}`;
      const n = 3 + round * 5;
      await meter.upsertSubscription({ userId: user, planId: "race" });
      await meter.grant(user, "tokens", n * 25);
      const results = await Promise.all(Array.from({ length: 48 }, () => meter.reserve(user, "llm.tokens", 25)));
      expect(results.filter((r) => r.allowed)).toHaveLength(n);
      expect((await meter.usage(user)).counters[0]).toMatchObject({ held: n * 25, remaining: 0 });
    }
  });

  test("concurrent commits and releases of one hold resolve it exactly once", async () => {
    await meter.upsertSubscription({ userId: "pb-once", planId: "race" });
    await meter.grant("pb-once", "tokens", 1_000);
    for (let i = 0; i < 5; i++) {
      const r = await meter.reserve("pb-once", "llm.tokens", 100);
      if (!r.allowed) throw new Error("denied");
      const out = await Promise.allSettled([
        ...Array.from({ length: 8 }, () => meter.commit(r.reservationId, { actual: 30 })),
        ...Array.from({ length: 8 }, () => meter.release(r.reservationId)),
      ]);
      const statuses = out.filter((o) => o.status === "fulfilled").map((o) => (o as PromiseFulfilledResult<{ status: string }>).value.status);
      expect(new Set(statuses).size).toBe(1);
      expect(statuses).toHaveLength(8);
    }
    const { rows } = await internalsOf(meter).pool.query<{ n: string }>(
      "SELECT count(*) AS n FROM meterkit.entries WHERE user_id = 'pb-once' AND kind IN ('commit', 'release')",
    );
    expect(Number(rows[0]!.n)).toBe(5);
    expect(await meter.audit()).toEqual([]);
  });

  describe("the HTTP handler", () => {
    const server = (path: string, init: { method?: string; body?: unknown; key?: string } = {}) =>
      handler(
        new Request("http://app.test" + path, {
          method: init.method ?? (init.body === undefined ? "GET" : "POST"),
          headers: {
            authorization: `Bearer ${SECRET}`,
            ...(init.body === undefined ? {} : { "content-type": "application/json" }),
            ...(init.key ? { "idempotency-key": init.key } : {}),
          },
          ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
        }),
      );

    test("the /v1 routes reserve, commit, release, track, grant and read usage", async () => {
      expect((await server("/v1/subscriptions/pb-http", { method: "PUT", body: { planId: "free" } })).status).toBe(200);
      const r = (await (await server("/v1/reservations", { body: { userId: "pb-http", meterKey: "llm.tokens", amount: 300 }, key: "h-r1" })).json()) as { reservationId: string };
      const again = (await (await server("/v1/reservations", { body: { userId: "pb-http", meterKey: "llm.tokens", amount: 300 }, key: "h-r1" })).json()) as { reservationId: string };
      expect(again.reservationId).toBe(r.reservationId);
      const c = await server(`/v1/reservations/${r.reservationId}/commit`, { body: { actual: 120 }, key: "h-c1" });
      expect(await c.json()).toMatchObject({ committed: 120, refunded: 180 });
      const r2 = (await (await server("/v1/reservations", { body: { userId: "pb-http", meterKey: "llm.tokens", amount: 50 } })).json()) as { reservationId: string };
      expect((await server(`/v1/reservations/${r2.reservationId}/release`, { body: {} })).status).toBe(200);
      expect((await server("/v1/events", { body: { userId: "pb-http", meterKey: "llm.tokens", amount: 30 }, key: "h-e1" })).status).toBe(200);
      expect((await server("/v1/grants", { body: { userId: "pb-http", counterKey: "tokens", amount: 500 }, key: "h-g1" })).status).toBe(200);
      const conflict = await server("/v1/grants", { body: { userId: "pb-http", counterKey: "tokens", amount: 501 }, key: "h-g1" });
      expect(conflict.status).toBe(409);
      const usage = (await (await server("/v1/users/pb-http/usage")).json()) as { counters: Array<Record<string, number>> };
      expect(usage.counters[0]).toMatchObject({ used: 150, held: 0, granted: 500, remaining: 1350 });
      const browser = await handler(new Request("http://app.test/usage"), { user: "pb-http" });
      expect(await browser.json()).toEqual(usage);
    });

    test("live streams work with LISTEN on a direct connection while the ledger goes through PgBouncer", async () => {
      await meter.upsertSubscription({ userId: "pb-live", planId: "free" });
      const srv = await listen(((req: Request) => handler(req, { user: "pb-live" })) as (req: Request) => Promise<Response>);
      const s = await openSse(`${srv.url}/usage/stream`);
      try {
        expect((await s.next()).counters[0]!.used).toBe(0);
        await meter.track("pb-live", "llm.tokens", 42);
        let u = await s.next(5_000);
        while (u.counters[0]!.used !== 42) u = await s.next(5_000);
        expect(u.counters[0]!.used).toBe(42);
      } finally {
        await s.close();
        await srv.close();
      }
    });
  });
});
