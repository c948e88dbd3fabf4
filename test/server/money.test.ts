import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { MeterError } from "../../src/core/errors.js";
import { createMeter, type Meter } from "../../src/server/index.js";
import { clockPool } from "../helpers/clock.js";
import { freshDatabase } from "../helpers/db.js";
import { TEST_PRICES } from "../helpers/meter.js";

const MAX = Number.MAX_SAFE_INTEGER;

let db: { url: string; drop: () => Promise<void> };
let clock: ReturnType<typeof clockPool>;
let meter: Meter;
let n = 0;
let user: string;

beforeAll(async () => {
  db = await freshDatabase();
  clock = clockPool(db.url);
  meter = createMeter({
    database: clock.pool,
    plans: {
      free: { limits: { tokens: { quota: 1000, period: "month" }, images: { quota: 10, period: "day" } } },
      zero: { limits: { tokens: { quota: 0, period: "month" } } },
      unlimited: { limits: { tokens: { quota: null, period: "month", overage: "reject" }, credits: { quota: 100, unit: "cents" } } },
    },
    meters: { "llm.tokens": { counter: "tokens" }, "llm.cost": { counter: "credits", price: "input" } },
    prices: TEST_PRICES,
    sweepInterval: 0,
    holdTtl: 60_000,
  });
  await meter.migrate();
});
afterAll(async () => {
  await meter.close();
  await clock.pool.end();
  await db.drop();
});
beforeEach(async () => {
  user = `money-${++n}`;
  await clock.set("2026-01-15T12:00:00.000Z");
});
afterEach(async () => {
  expect(await meter.audit(user)).toEqual([]);
});

const tokens = async (u = user) => (await meter.usage(u)).counters.find((c) => c.key === "tokens")!;
const error = (p: Promise<unknown>) => p.then(() => null, (e: MeterError) => e);
async function committed(amount: number, actual: number, u = user) {
  const r = await meter.reserve(u, "llm.tokens", amount);
  if (!r.allowed) throw new Error(`reserve ${amount} denied`);
  await meter.commit(r.reservationId, { actual });
  return r.reservationId;
}
async function entryCount() {
  const { rows } = await clock.pool.query<{ n: string }>("SELECT count(*) AS n FROM meterkit.entries");
  return Number(rows[0]!.n);
}

describe("a refund that names a reservation", () => {
  test("gives back at most what that reservation committed, minus earlier refunds against it", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    await meter.track(user, "llm.tokens", 500);
    const id = await committed(400, 100);
    expect(await meter.track(user, "llm.tokens.refund", 5000, { reservationId: id })).toMatchObject({ amount: -100 });
    expect(await tokens()).toMatchObject({ used: 500 });
    expect(await meter.track(user, "llm.tokens.refund", 50, { reservationId: id })).toMatchObject({ amount: 0 });
    expect(await tokens()).toMatchObject({ used: 500 });
  });

  test("partial refunds add up to the commit and no more", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    const id = await committed(500, 300);
    expect((await meter.track(user, "llm.tokens.refund", 120, { reservationId: id })).amount).toBe(-120);
    expect((await meter.track(user, "llm.tokens.refund", 500, { reservationId: id })).amount).toBe(-180);
    expect(await tokens()).toMatchObject({ used: 0 });
  });

  test("an unknown reservation, or another user's, is not_found and writes nothing", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    await meter.upsertSubscription({ userId: `${user}-other`, planId: "free" });
    await meter.track(user, "llm.tokens", 500);
    const theirs = await committed(300, 300, `${user}-other`);
    const before = await entryCount();
    expect(await error(meter.track(user, "llm.tokens.refund", 100, { reservationId: "rsv_nope" }))).toMatchObject({ code: "not_found" });
    expect(await error(meter.track(user, "llm.tokens.refund", 100, { reservationId: theirs }))).toMatchObject({ code: "not_found" });
    expect(await entryCount()).toBe(before);
    expect(await tokens()).toMatchObject({ used: 500 });
    expect(await meter.audit(`${user}-other`)).toEqual([]);
  });

  test("an open, released or expired hold is a conflict naming its state, and writes nothing", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    await meter.track(user, "llm.tokens", 500);
    const open = await meter.reserve(user, "llm.tokens", 100);
    const released = await meter.reserve(user, "llm.tokens", 100);
    const expiring = await meter.reserve(user, "llm.tokens", 100, { ttl: 1000 });
    if (!open.allowed || !released.allowed || !expiring.allowed) throw new Error("denied");
    await meter.release(released.reservationId);
    await clock.set("2026-01-15T12:00:05.000Z");
    const before = await entryCount();
    for (const [id, reason] of [[open.reservationId, "open"], [released.reservationId, "released"], [expiring.reservationId, "expired"]] as const) {
      const e = await error(meter.track(user, "llm.tokens.refund", 50, { reservationId: id }));
      expect(e).toMatchObject({ code: "conflict", details: { reason } });
    }
    expect(await tokens()).toMatchObject({ used: 500 });
    // The expiry itself is recorded by the first write after it (the refunds wrote nothing else).
    expect(await entryCount()).toBeLessThanOrEqual(before + 1);
  });

  test("a hold on another counter of the same user is a conflict", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    await meter.track(user, "images", 5);
    const id = await committed(100, 100);
    expect(await error(meter.track(user, "images.refund", 5, { reservationId: id }))).toMatchObject({
      code: "conflict",
      details: { reason: "other_counter" },
    });
    expect((await meter.usage(user)).counters.find((c) => c.key === "images")).toMatchObject({ used: 5 });
  });
});

describe("a hold resolves once", () => {
  test("commit(10) then commit(90) is a conflict carrying the first result", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    const r = await meter.reserve(user, "llm.tokens", 100);
    if (!r.allowed) throw new Error("denied");
    const first = await meter.commit(r.reservationId, { actual: 10 });
    const e = await error(meter.commit(r.reservationId, { actual: 90 }));
    expect(e).toMatchObject({ code: "conflict", status: 409, details: { reason: "committed", reservationId: r.reservationId, result: first } });
    expect(await tokens()).toMatchObject({ used: 10 });
  });

  test("repeating the same commit returns the first result; omitted actual and omitted cachedInputTokens count as the same", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    const a = await meter.reserve(user, "llm.tokens", 100);
    const b = await meter.reserve(user, "llm.tokens", 100);
    if (!a.allowed || !b.allowed) throw new Error("denied");
    const first = await meter.commit(a.reservationId);
    expect(await meter.commit(a.reservationId)).toEqual(first);
    expect(await error(meter.commit(a.reservationId, { actual: 100 }))).toMatchObject({ code: "conflict" });
    const u = await meter.commit(b.reservationId, { usage: { inputTokens: 20, outputTokens: 5 } });
    expect(await meter.commit(b.reservationId, { usage: { inputTokens: 20, cachedInputTokens: 0, outputTokens: 5 } })).toEqual(u);
    expect(await error(meter.commit(b.reservationId, { usage: { inputTokens: 20, outputTokens: 6 } }))).toMatchObject({
      code: "conflict",
      details: { reason: "committed", result: u },
    });
    expect(await tokens()).toMatchObject({ used: 125 });
  });

  test("release after release returns the first result; commit after release is a conflict with the first result", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    const r = await meter.reserve(user, "llm.tokens", 100);
    if (!r.allowed) throw new Error("denied");
    const first = await meter.release(r.reservationId);
    expect(await meter.release(r.reservationId)).toEqual(first);
    expect(await error(meter.commit(r.reservationId, { actual: 1 }))).toMatchObject({ code: "conflict", details: { reason: "released", result: first } });
  });
});

describe("amounts stay safe integers", () => {
  test("1,025 grants of 2^53 - 1 are refused after the first with invalid_request, never a 500", async () => {
    await meter.upsertSubscription({ userId: user, planId: "zero" });
    await meter.grant(user, "tokens", MAX);
    for (let i = 0; i < 3; i++) {
      const e = await error(meter.grant(user, "tokens", MAX));
      expect(e).toMatchObject({ code: "invalid_request", details: { reason: "max_safe_integer", limit: MAX } });
    }
    expect(await tokens()).toMatchObject({ granted: MAX, remaining: MAX });
  });

  test("a grant of 2^53 - 1 on top of an allowance is refused: remaining would be inexact", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    const e = await error(meter.grant(user, "tokens", MAX));
    expect(e).toMatchObject({ code: "invalid_request", details: { reason: "max_safe_integer" } });
    await meter.grant(user, "tokens", MAX - 1000);
    expect(await tokens()).toMatchObject({ granted: MAX - 1000, remaining: MAX });
  });

  test("usage that would take a period's total past 2^53 - 1 is refused", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    await meter.track(user, "llm.tokens", MAX);
    expect(await error(meter.track(user, "llm.tokens", 1))).toMatchObject({ code: "invalid_request", details: { reason: "max_safe_integer" } });
    const r = await meter.reserve(user, "llm.tokens", 1);
    expect(r.allowed).toBe(false);
    expect(await tokens()).toMatchObject({ used: MAX });
  });

  test("a commit whose usage sums past 2^53 - 1 is refused and the hold stays open", async () => {
    await meter.upsertSubscription({ userId: user, planId: "unlimited" });
    const r = await meter.reserve(user, "llm.tokens", 10);
    if (!r.allowed) throw new Error("denied");
    expect(await error(meter.commit(r.reservationId, { usage: { inputTokens: MAX, outputTokens: MAX } }))).toMatchObject({
      code: "invalid_request",
      details: { reason: "max_safe_integer" },
    });
    expect(await tokens()).toMatchObject({ used: 0, held: 10 });
    await meter.release(r.reservationId);
  });

  test("holds on an unlimited counter cannot add up past 2^53 - 1", async () => {
    await meter.upsertSubscription({ userId: user, planId: "unlimited" });
    expect((await meter.reserve(user, "llm.tokens", MAX)).allowed).toBe(true);
    expect(await error(meter.reserve(user, "llm.tokens", 1))).toMatchObject({ code: "invalid_request", details: { reason: "max_safe_integer" } });
  });

  test("a custom quota that would take remaining past 2^53 - 1 is refused", async () => {
    await meter.upsertSubscription({ userId: user, planId: "zero" });
    await meter.grant(user, "tokens", MAX - 10);
    expect(await error(meter.upsertSubscription({ userId: user, planId: "zero", customLimits: { tokens: { quota: 11 } } }))).toMatchObject({
      code: "invalid_request",
      details: { reason: "max_safe_integer" },
    });
    await meter.upsertSubscription({ userId: user, planId: "zero", customLimits: { tokens: { quota: 10 } } });
    expect(await tokens()).toMatchObject({ remaining: MAX });
  });
});

describe("grant expiry dates", () => {
  test("an expiry in the past, or now, is refused by the database clock", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    for (const expiresAt of ["2026-01-15T11:59:59.000Z", "2026-01-15T12:00:00.000Z", new Date("2025-06-01T00:00:00Z")]) {
      expect(await error(meter.grant(user, "tokens", 10, { expiresAt }))).toMatchObject({ code: "invalid_request", details: { field: "expiresAt" } });
    }
    await meter.grant(user, "tokens", 10, { expiresAt: "2026-01-15T12:00:01.000Z" });
    expect(await tokens()).toMatchObject({ granted: 10 });
  });

  test("impossible calendar dates are refused, not rolled over", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    for (const expiresAt of ["2026-02-30", "2026-02-29T00:00:00Z", "2026-04-31T10:00:00.000Z", "2026-13-01", "2026-06-01T24:30:00Z", "June 1 2026"]) {
      expect(await error(meter.grant(user, "tokens", 10, { expiresAt }))).toMatchObject({ code: "invalid_request", details: { field: "expiresAt" } });
    }
    await meter.grant(user, "tokens", 10, { expiresAt: "2028-02-29" });
    await meter.grant(user, "tokens", 10, { expiresAt: "2026-06-01T10:00:00+02:00" });
    expect(await tokens()).toMatchObject({ granted: 20 });
  });
});

describe("unknown fields at any depth", () => {
  test("a typo in usage is invalid_request naming the path, and the hold stays open", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    const r = await meter.reserve(user, "llm.tokens", 100);
    if (!r.allowed) throw new Error("denied");
    const bad = { inputTokens: 10, outputTokens: 1, cachedTokens: 999 } as never;
    expect(await error(meter.commit(r.reservationId, { usage: bad }))).toMatchObject({ code: "invalid_request", details: { field: "usage.cachedTokens" } });
    expect(await tokens()).toMatchObject({ held: 100, used: 0 });
    await meter.release(r.reservationId);
  });

  test("a typo in customLimits is invalid_request naming the path", async () => {
    const bad = { tokens: { quotta: 5 } } as never;
    expect(await error(meter.upsertSubscription({ userId: user, planId: "free", customLimits: bad }))).toMatchObject({
      code: "invalid_request",
      details: { field: "customLimits.tokens.quotta" },
    });
    const extra = { tokens: { quota: 5, period: "day" } } as never;
    expect(await error(meter.upsertSubscription({ userId: user, planId: "free", customLimits: extra }))).toMatchObject({
      details: { field: "customLimits.tokens.period" },
    });
  });

  test("unknown options of every ledger call are invalid_request", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    const r = await meter.reserve(user, "llm.tokens", 100);
    if (!r.allowed) throw new Error("denied");
    const cases: Array<[Promise<unknown>, string]> = [
      [meter.reserve(user, "llm.tokens", 1, { ttll: 5 } as never), "ttll"],
      [meter.commit(r.reservationId, { actuall: 5 } as never), "actuall"],
      [meter.track(user, "llm.tokens", 1, { reservationID: "x" } as never), "reservationID"],
      [meter.grant(user, "tokens", 1, { expires: "2030-01-01" } as never), "expires"],
      [meter.adjust(user, "tokens", 1, { reason: "x", why: "y" } as never), "why"],
      [meter.upsertSubscription({ userId: user, planId: "free", plan: "pro" } as never), "plan"],
    ];
    for (const [p, field] of cases) expect(await error(p)).toMatchObject({ code: "invalid_request", details: { field } });
    await meter.release(r.reservationId);
    expect(await tokens()).toMatchObject({ used: 0, granted: 0 });
  });
});

describe("unlimited counters (quota: null)", () => {
  test("usage is recorded and reported; reserve and track always succeed; quota and remaining are null", async () => {
    await meter.upsertSubscription({ userId: user, planId: "unlimited" });
    const r = await meter.reserve(user, "llm.tokens", 5_000_000);
    expect(r).toMatchObject({ allowed: true, remaining: null });
    expect(await meter.track(user, "llm.tokens", 7_000_000)).toMatchObject({ amount: 7_000_000, remaining: null });
    expect(await tokens()).toEqual(expect.objectContaining({ quota: null, remaining: null, used: 7_000_000, held: 5_000_000, granted: 0 }));
    if (!r.allowed) throw new Error("denied");
    expect(await meter.commit(r.reservationId, { actual: 4_000_000 })).toMatchObject({ committed: 4_000_000, remaining: null });
    expect(await tokens()).toMatchObject({ quota: null, remaining: null, used: 11_000_000, held: 0 });
    // A limited counter of the same plan is unaffected.
    expect((await meter.usage(user)).counters.find((c) => c.key === "credits")).toMatchObject({ quota: 100, remaining: 100 });
  });

  test("grants on an unlimited counter are kept, not drawn", async () => {
    await meter.upsertSubscription({ userId: user, planId: "unlimited" });
    await meter.grant(user, "tokens", 500);
    await meter.track(user, "llm.tokens", 2_000);
    expect(await tokens()).toMatchObject({ granted: 500, used: 2_000, remaining: null });
  });

  test("customLimits can make a limited counter unlimited, and back", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free", customLimits: { tokens: { quota: null } } });
    expect(await meter.track(user, "llm.tokens", 50_000)).toMatchObject({ remaining: null });
    expect(await tokens()).toMatchObject({ quota: null, remaining: null, used: 50_000 });
    await meter.upsertSubscription({ userId: user, planId: "free", customLimits: { tokens: { quota: 60_000 } } });
    expect(await tokens()).toMatchObject({ quota: 60_000, remaining: 10_000 });
    expect((await meter.reserve(user, "llm.tokens", 10_001)).allowed).toBe(false);
  });
});
