import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { CounterUsage } from "../../src/core/types.js";
import { createMeter, type Meter } from "../../src/server/index.js";
import { clockPool } from "../helpers/clock.js";
import { freshDatabase } from "../helpers/db.js";

// Clock edges, with the database clock frozen per test (meterkit.clock on a one-connection pool).
let db: Awaited<ReturnType<typeof freshDatabase>>;
let clock: ReturnType<typeof clockPool>;
let meter: Meter;
let n = 0;
const fresh = () => `edge-${++n}`;

beforeAll(async () => {
  db = await freshDatabase();
  clock = clockPool(db.url);
  meter = createMeter({
    database: clock.pool,
    plans: {
      monthly: { limits: { tokens: { quota: 1_000, period: "month" }, strict: { quota: 1_000, period: "month", overage: "reject" } } },
      anchored: { limits: { tokens: { quota: 100, period: "month", anchor: "subscription_start", overage: "reject" } } },
      daily: { limits: { tokens: { quota: 100, period: "day", anchor: "subscription_start" } } },
    },
    sweepInterval: 0,
  });
  await meter.migrate();
});
afterAll(async () => {
  await meter.close();
  await clock.pool.end();
  await db.drop();
});

const counter = async (user: string, key = "tokens"): Promise<CounterUsage> => (await meter.usage(user)).counters.find((c) => c.key === key)!;
const hold = async (user: string, amount: number, ttl: number, key = "tokens") => {
  const r = await meter.reserve(user, key, amount, { ttl });
  if (!r.allowed) throw new Error(`denied ${amount}: ${r.remaining} left`);
  return r;
};

describe("holds across a period boundary", () => {
  test("a hold taken in the last second of a month keeps counting in the next month, against the new allowance, until its own expiry", async () => {
    const user = fresh();
    await clock.set("2026-01-31T23:59:59.000Z");
    await meter.upsertSubscription({ userId: user, planId: "monthly" });
    await meter.track(user, "tokens", 700);
    const r = await hold(user, 300, 60_000);
    expect(r.expiresAt).toBe("2026-02-01T00:00:59.000Z");
    expect(await counter(user)).toMatchObject({ used: 700, held: 300, remaining: 0 });

    await clock.set("2026-02-01T00:00:00.000Z");
    expect(await counter(user)).toMatchObject({ periodStart: "2026-02-01T00:00:00.000Z", used: 0, held: 300, remaining: 700 });
    expect((await meter.reserve(user, "tokens", 701)).allowed).toBe(false);

    await clock.set("2026-02-01T00:00:58.999Z");
    expect(await counter(user)).toMatchObject({ held: 300, remaining: 700 });
    await clock.set("2026-02-01T00:00:59.000Z");
    expect(await counter(user)).toMatchObject({ held: 0, remaining: 1_000 });
    expect(await meter.audit(user)).toEqual([]);
  });

  test("a commit arriving after the boundary but before expiry charges the new period, and the old period keeps what it had", async () => {
    const user = fresh();
    await clock.set("2026-02-28T23:59:30.000Z");
    await meter.upsertSubscription({ userId: user, planId: "monthly" });
    await meter.track(user, "tokens", 100);
    const r = await hold(user, 500, 60_000);
    await clock.set("2026-03-01T00:00:29.999Z");
    expect(await meter.commit(r.reservationId, { actual: 450 })).toMatchObject({ committed: 450, refunded: 50 });
    expect(await counter(user)).toMatchObject({ periodStart: "2026-03-01T00:00:00.000Z", used: 450, held: 0, remaining: 550 });
    const { rows } = await clock.pool.query<{ p: Date; used: string }>(
      "SELECT period_start AS p, used::text FROM meterkit.balances WHERE user_id = $1 ORDER BY period_start",
      [user],
    );
    expect(rows.map((x) => [x.p.toISOString(), x.used])).toEqual([
      ["2026-02-01T00:00:00.000Z", "100"],
      ["2026-03-01T00:00:00.000Z", "450"],
    ]);
    expect(await meter.audit(user)).toEqual([]);
  });

  test("a commit arriving exactly at expiry, after a boundary, is a conflict and charges neither period", async () => {
    const user = fresh();
    await clock.set("2026-03-31T23:59:50.000Z");
    await meter.upsertSubscription({ userId: user, planId: "monthly" });
    const r = await hold(user, 400, 20_000);
    await clock.set("2026-04-01T00:00:10.000Z");
    await expect(meter.commit(r.reservationId, { actual: 400 })).rejects.toMatchObject({
      code: "conflict",
      details: { reason: "expired", expiresAt: "2026-04-01T00:00:10.000Z" },
    });
    await expect(meter.release(r.reservationId)).rejects.toMatchObject({ code: "conflict", details: { reason: "expired" } });
    expect(await counter(user)).toMatchObject({ used: 0, held: 0, remaining: 1_000 });
    const { rows } = await clock.pool.query<{ s: string }>("SELECT coalesce(sum(used), 0)::text AS s FROM meterkit.balances WHERE user_id = $1", [user]);
    expect(rows[0]!.s).toBe("0");
  });

  test("a commit after the sweeper recorded the expiry is the same conflict, and the expiry is recorded once", async () => {
    const user = fresh();
    await clock.set("2026-04-30T23:59:59.500Z");
    await meter.upsertSubscription({ userId: user, planId: "monthly" });
    const r = await hold(user, 250, 1_000);
    await clock.set("2026-05-01T00:00:03.000Z");
    expect(await meter.sweepExpired()).toBeGreaterThanOrEqual(1);
    await expect(meter.commit(r.reservationId, { actual: 1 })).rejects.toMatchObject({ code: "conflict", details: { reason: "expired" } });
    expect(await meter.sweepExpired()).toBe(0);
    const { rows } = await clock.pool.query<{ kind: string }>("SELECT kind FROM meterkit.entries WHERE hold_id = $1 ORDER BY id", [r.reservationId]);
    expect(rows.map((x) => x.kind)).toEqual(["reserve", "expire"]);
    expect(await meter.audit(user)).toEqual([]);
  });

  test("on a counter that rejects overage, a hold carried into the next month still blocks what it holds, so used + held never passes quota + granted", async () => {
    const user = fresh();
    await clock.set("2026-05-31T23:59:00.000Z");
    await meter.upsertSubscription({ userId: user, planId: "monthly" });
    await hold(user, 900, 600_000, "strict");
    await clock.set("2026-06-01T00:00:01.000Z");
    await expect(meter.track(user, "strict", 101)).rejects.toMatchObject({ code: "limit_reached" });
    await meter.track(user, "strict", 100);
    const c = await counter(user, "strict");
    expect(c).toMatchObject({ used: 100, held: 900, remaining: 0 });
    expect(c.used + c.held).toBeLessThanOrEqual(c.quota! + c.granted);
  });

  test("a daily subscription_start period renews at the anchor's time of day, not at midnight", async () => {
    const user = fresh();
    await clock.set("2026-07-10T15:30:00.000Z");
    await meter.upsertSubscription({ userId: user, planId: "daily", startedAt: "2026-07-10T15:30:00.000Z" });
    await meter.track(user, "tokens", 100);
    await clock.set("2026-07-11T00:00:00.000Z");
    expect(await counter(user)).toMatchObject({ used: 100, remaining: 0 });
    await clock.set("2026-07-11T15:29:59.999Z");
    expect(await counter(user)).toMatchObject({ used: 100, remaining: 0 });
    await clock.set("2026-07-11T15:30:00.000Z");
    expect(await counter(user)).toMatchObject({ used: 0, remaining: 100, periodStart: "2026-07-11T15:30:00.000Z" });
  });
});

/** The expected start of month k of a subscription started at `s`: same day (or the month's last) and time of day. */
function anchorStart(s: Date, k: number): Date {
  const y = s.getUTCFullYear();
  const m = s.getUTCMonth() + k;
  const last = new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
  return new Date(Date.UTC(y, m, Math.min(s.getUTCDate(), last), s.getUTCHours(), s.getUTCMinutes(), s.getUTCSeconds(), s.getUTCMilliseconds()));
}

describe("subscription anchors on the 29th, 30th and 31st", () => {
  test.each([
    "2027-01-29T08:00:00.000Z",
    "2027-01-30T08:00:00.000Z",
    "2027-01-31T08:00:00.000Z",
    "2028-01-29T23:59:59.999Z", // leap year: Feb 29 exists
    "2028-01-30T00:00:00.000Z",
    "2028-01-31T12:00:00.000Z",
    "2027-08-31T06:00:00.000Z", // through Sep 30, Nov 30, Feb 28
  ])("started %s: for 13 months the allowance is spent up to the instant before each renewal and comes back exactly at it", async (started) => {
    const user = fresh();
    const s = new Date(started);
    await clock.set(s);
    await meter.upsertSubscription({ userId: user, planId: "anchored", startedAt: s });
    for (let k = 0; k < 13; k++) {
      const start = anchorStart(s, k);
      const end = anchorStart(s, k + 1);
      await clock.set(start);
      const c = await counter(user);
      expect({ start: c.periodStart, end: c.periodEnd, used: c.used }).toEqual({ start: start.toISOString(), end: end.toISOString(), used: 0 });
      await meter.track(user, "tokens", 100);
      await clock.set(new Date(end.getTime() - 1));
      expect((await meter.reserve(user, "tokens", 1)).allowed).toBe(false);
      await expect(meter.track(user, "tokens", 1)).rejects.toMatchObject({ code: "limit_reached" });
    }
    expect(await meter.audit(user)).toEqual([]);
  });
});
