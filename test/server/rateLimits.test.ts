import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { LimitReachedError } from "../../src/core/errors.js";
import { createMeter, meterErrorResponse, type Meter } from "../../src/server/index.js";
import { clockPool } from "../helpers/clock.js";
import { freshDatabase } from "../helpers/db.js";

// Rate windows (period "minute" / "hour") on the database clock, across window boundaries.
let db: Awaited<ReturnType<typeof freshDatabase>>;
let clock: ReturnType<typeof clockPool>;
let meter: Meter;

beforeAll(async () => {
  db = await freshDatabase();
  clock = clockPool(db.url);
  meter = createMeter({
    database: clock.pool,
    sweepInterval: 0,
    plans: {
      rate: {
        limits: {
          requests: { quota: 3, period: "minute", overage: "reject" },
          hourly: { quota: 5, period: "hour", anchor: "subscription_start", overage: "reject" },
          inflight: { kind: "concurrency", quota: 2 },
        },
      },
      pro: {
        limits: {
          requests: { quota: 10, period: "minute", overage: "reject" },
          hourly: { quota: 50, period: "hour" },
          inflight: { kind: "concurrency", quota: 3 },
        },
      },
    },
  });
  await meter.migrate();
});
afterAll(async () => {
  await meter.close();
  await clock.pool.end();
  await db.drop();
});

describe("rate windows", () => {
  test("a calendar minute window: full until the top of the next minute, then renewed", async () => {
    await clock.set("2026-05-01T10:00:05Z");
    await meter.upsertSubscription({ userId: "m1", planId: "rate" });
    for (let i = 0; i < 3; i++) expect((await meter.reserve("m1", "requests", 1)).allowed).toBe(true);
    await clock.set("2026-05-01T10:00:40.200Z");
    const denied = await meter.reserve("m1", "requests", 1);
    // Holds count until resolved: still full. 19.8 s left in the window, rounded up.
    expect(denied).toMatchObject({ allowed: false, reason: "limit_reached", counter: "requests", remaining: 0, retryAfter: 20 });
    const usage = await meter.usage("m1");
    expect(usage.counters.find((c) => c.key === "requests")).toMatchObject({
      held: 3,
      remaining: 0,
      periodStart: "2026-05-01T10:00:00.000Z",
      periodEnd: "2026-05-01T10:01:00.000Z",
    });
    await clock.set("2026-05-01T10:00:59.999Z");
    expect((await meter.reserve("m1", "requests", 1)).allowed).toBe(false);
  });

  test("committed usage renews at the window boundary; a too-large request gets no retryAfter", async () => {
    await clock.set("2026-05-01T11:00:00Z");
    await meter.upsertSubscription({ userId: "m2", planId: "rate" });
    for (let i = 0; i < 3; i++) await meter.track("m2", "requests", 1);
    await clock.set("2026-05-01T11:00:59.5Z");
    const err = await meter.track("m2", "requests", 1).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "limit_reached", details: { retryAfter: 1 } });
    const tooBig = await meter.reserve("m2", "requests", 4);
    expect(tooBig.allowed).toBe(false);
    expect(tooBig).not.toHaveProperty("retryAfter");
    await clock.set("2026-05-01T11:01:00Z");
    expect((await meter.reserve("m2", "requests", 3)).allowed).toBe(true);
    const c = (await meter.usage("m2")).counters.find((x) => x.key === "requests")!;
    expect(c).toMatchObject({ used: 0, held: 3, periodStart: "2026-05-01T11:01:00.000Z" });
  });

  test("a subscription_start hour runs in multiples of an hour from the start", async () => {
    await clock.set("2026-05-01T12:17:30Z");
    await meter.upsertSubscription({ userId: "h1", planId: "rate", startedAt: "2026-05-01T09:17:30Z" });
    await meter.track("h1", "hourly", 5);
    let c = (await meter.usage("h1")).counters.find((x) => x.key === "hourly")!;
    expect(c).toMatchObject({ used: 5, remaining: 0, periodStart: "2026-05-01T12:17:30.000Z", periodEnd: "2026-05-01T13:17:30.000Z" });
    await clock.set("2026-05-01T13:17:29Z");
    expect(await meter.reserve("h1", "hourly", 1)).toMatchObject({ allowed: false, retryAfter: 1 });
    await clock.set("2026-05-01T13:17:30Z");
    expect((await meter.reserve("h1", "hourly", 5)).allowed).toBe(true);
    c = (await meter.usage("h1")).counters.find((x) => x.key === "hourly")!;
    expect(c).toMatchObject({ used: 0, held: 5, periodStart: "2026-05-01T13:17:30.000Z" });
  });

  test("plan-aware: a custom limit and another plan change the window's quota", async () => {
    await clock.set("2026-05-01T14:00:00Z");
    await meter.upsertSubscription({ userId: "p1", planId: "pro" });
    await meter.upsertSubscription({ userId: "p2", planId: "rate", customLimits: { requests: { quota: 1 } } });
    for (let i = 0; i < 10; i++) await meter.track("p1", "requests", 1);
    await expect(meter.track("p1", "requests", 1)).rejects.toMatchObject({ code: "limit_reached" });
    await meter.track("p2", "requests", 1);
    expect(await meter.reserve("p2", "requests", 1)).toMatchObject({ allowed: false, retryAfter: 60 });
  });

  test("grants valid past the window count toward retryAfter; the HTTP answer carries Retry-After", async () => {
    await clock.set("2026-05-01T15:00:30Z");
    await meter.upsertSubscription({ userId: "g1", planId: "rate" });
    await meter.grant("g1", "requests", 2, { expiresAt: "2026-05-01T16:00:00Z" });
    const r = await meter.reserve("g1", "requests", 6);
    expect(r.allowed).toBe(false);
    expect(r).not.toHaveProperty("retryAfter"); // 5 available now, 3 + 2 after the window: waiting does not help
    for (let i = 0; i < 5; i++) await meter.track("g1", "requests", 1);
    const err = await meter.track("g1", "requests", 2).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    const res = meterErrorResponse(err)!;
    expect(res.status).toBe(402);
    expect(res.headers.get("retry-after")).toBe("30");
    const plain = meterErrorResponse(new LimitReachedError({ counter: "x", remaining: 0, required: 1 }))!;
    expect(plain.headers.get("retry-after")).toBeNull();
  });
});

describe("concurrency groups", () => {
  const inflight = async (user: string) => (await meter.usage(user)).counters.find((c) => c.key === "inflight")!;

  test("counts open holds, one slot each whatever the amount; commit and release free a slot and record no usage", async () => {
    await clock.set("2026-06-01T10:00:00Z");
    await meter.upsertSubscription({ userId: "c1", planId: "rate" });
    const a = await meter.reserve("c1", "inflight", 500, { ttl: 60_000 });
    const b = await meter.reserve("c1", "inflight", 1, { ttl: 120_000 });
    expect(a).toMatchObject({ allowed: true, amount: 1, remaining: 1 });
    expect(b).toMatchObject({ allowed: true, amount: 1, remaining: 0 });
    expect(await inflight("c1")).toMatchObject({ kind: "concurrency", quota: 2, used: 0, granted: 0, held: 2, remaining: 0, periodStart: null, periodEnd: null, unit: "calls" });
    await clock.set("2026-06-01T10:00:10Z");
    // Full: retry when the earliest hold expires at the latest (50 s).
    expect(await meter.reserve("c1", "inflight", 1)).toMatchObject({ allowed: false, reason: "limit_reached", counter: "inflight", remaining: 0, retryAfter: 50 });
    if (!a.allowed || !b.allowed) throw new Error("unreachable");
    expect(await meter.commit(a.reservationId, { actual: 400 })).toMatchObject({ committed: 0, held: 1 });
    expect(await inflight("c1")).toMatchObject({ used: 0, held: 1, remaining: 1 });
    const c = await meter.reserve("c1", "inflight", 1);
    expect(c.allowed).toBe(true);
    await meter.release(b.reservationId);
    expect(await inflight("c1")).toMatchObject({ used: 0, held: 1, remaining: 1 });
    expect(await meter.audit("c1")).toEqual([]);
  });

  test("expiry frees a slot on the database clock", async () => {
    await clock.set("2026-06-01T11:00:00Z");
    await meter.upsertSubscription({ userId: "c2", planId: "rate" });
    await meter.reserve("c2", "inflight", 1, { ttl: 30_000 });
    await meter.reserve("c2", "inflight", 1, { ttl: 90_000 });
    await clock.set("2026-06-01T11:00:29.999Z");
    expect((await meter.reserve("c2", "inflight", 1)).allowed).toBe(false);
    await clock.set("2026-06-01T11:00:30Z");
    expect((await meter.reserve("c2", "inflight", 1)).allowed).toBe(true);
    expect(await inflight("c2")).toMatchObject({ held: 2, remaining: 0 });
    expect(await meter.audit("c2")).toEqual([]);
  });

  test("plan-aware: another plan and a custom limit set the number of slots", async () => {
    await clock.set("2026-06-01T12:00:00Z");
    await meter.upsertSubscription({ userId: "c3", planId: "pro" });
    await meter.upsertSubscription({ userId: "c4", planId: "rate", customLimits: { inflight: { quota: 0 } } });
    for (let i = 0; i < 3; i++) expect((await meter.reserve("c3", "inflight", 1)).allowed).toBe(true);
    expect((await meter.reserve("c3", "inflight", 1)).allowed).toBe(false);
    const none = await meter.reserve("c4", "inflight", 1);
    expect(none).toMatchObject({ allowed: false, remaining: 0 });
    expect(none).not.toHaveProperty("retryAfter"); // no slot will ever free
  });

  test("takes no tracks, grants or adjustments; a concurrency group with a period is refused", async () => {
    await expect(meter.track("c1", "inflight", 1)).rejects.toMatchObject({ code: "invalid_request" });
    await expect(meter.grant("c1", "inflight", 1)).rejects.toMatchObject({ code: "invalid_request" });
    await expect(meter.adjust("c1", "inflight", 1, { reason: "x" })).rejects.toMatchObject({ code: "invalid_request" });
    expect(() =>
      createMeter({ database: db.url, plans: { p: { limits: { g: { kind: "concurrency", quota: 1, period: "minute" } } } } }),
    ).toThrow(/no period/);
    expect(() => createMeter({ database: db.url, plans: { p: { limits: { g: { kind: "concurrency", quota: 1, unit: "cents" } } } } })).toThrow(/not cents/);
    expect(() =>
      createMeter({ database: db.url, plans: { a: { limits: { g: { quota: 1 } } }, b: { limits: { g: { kind: "concurrency", quota: 1 } } } } }),
    ).toThrow(/one kind/);
    expect(() =>
      createMeter({ database: db.url, plans: { a: { limits: { g: { quota: 1 } } } }, meters: { m: { counter: "g", counts: "both" as "input" } } }),
    ).toThrow(/counts must be/);
  });

  test("64 concurrent callers never hold more slots than the quota", async () => {
    const { createMeter: make } = await import("../../src/server/index.js");
    const wide = make({ database: db.url, sweepInterval: 0, poolSize: 16, plans: { wide: { limits: { inflight: { kind: "concurrency", quota: 2 } } } } });
    await wide.upsertSubscription({ userId: "c5", planId: "wide" });
    const results = await Promise.all(Array.from({ length: 64 }, () => wide.reserve("c5", "inflight", 1)));
    expect(results.filter((r) => r.allowed)).toHaveLength(2);
    await wide.close();
  });
});
