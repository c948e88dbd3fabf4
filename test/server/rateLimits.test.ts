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
        },
      },
      pro: { limits: { requests: { quota: 10, period: "minute", overage: "reject" }, hourly: { quota: 50, period: "hour" } } },
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
