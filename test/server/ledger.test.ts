import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { MeterError } from "../../src/core/errors.js";
import { createMeter, type Meter } from "../../src/server/index.js";
import { clockPool } from "../helpers/clock.js";
import { freshDatabase } from "../helpers/db.js";
import { TEST_PLANS, TEST_PRICES } from "../helpers/meter.js";

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
    plans: TEST_PLANS,
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
  user = `user-${++n}`;
  await clock.set("2026-01-15T12:00:00.000Z");
});
afterEach(async () => {
  expect(await meter.audit(user)).toEqual([]);
});

const tokens = async (u = user) => (await meter.usage(u)).counters.find((c) => c.key === "tokens")!;
async function hold(amount: number, u = user, opts = {}) {
  const r = await meter.reserve(u, "llm.tokens", amount, opts);
  if (!r.allowed) throw new Error(`reserve ${amount} denied`);
  return r;
}
const error = (p: Promise<unknown>) => p.then(() => null, (e: MeterError) => e);

describe("reserve, commit, release", () => {
  test("commit refunds the unused part of the hold at once", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    const r = await hold(600);
    expect(r.remaining).toBe(400);
    expect(await tokens()).toMatchObject({ held: 600, used: 0, remaining: 400 });
    const c = await meter.commit(r.reservationId, { actual: 250 });
    expect(c).toMatchObject({ status: "committed", held: 600, committed: 250, refunded: 350, overage: 0, remaining: 750 });
    expect(await tokens()).toMatchObject({ held: 0, used: 250, remaining: 750 });
  });

  test("a commit without actual charges the whole hold", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    const r = await hold(300);
    expect(await meter.commit(r.reservationId)).toMatchObject({ committed: 300, refunded: 0 });
  });

  test("actual above the hold is recorded as overage, never dropped", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    const r = await hold(900);
    const c = await meter.commit(r.reservationId, { actual: 1200 });
    expect(c).toMatchObject({ committed: 1200, overage: 300, refunded: 0, remaining: 0 });
    expect(await tokens()).toMatchObject({ used: 1200, remaining: 0 });
    expect((await meter.reserve(user, "llm.tokens", 1)).allowed).toBe(false);
  });

  test("release frees the whole hold", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    const r = await hold(700);
    expect(await meter.release(r.reservationId)).toMatchObject({ status: "released", released: 700, remaining: 1000 });
    expect(await tokens()).toMatchObject({ held: 0, used: 0, remaining: 1000 });
  });

  test("a repeated commit or release returns the first result and writes once", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    const a = await hold(500);
    const first = await meter.commit(a.reservationId, { actual: 100 });
    expect(await meter.commit(a.reservationId, { actual: 100 })).toEqual(first);
    // Other numbers are not a repeat: a conflict carrying the first result (test/server/money.test.ts).
    expect(await error(meter.commit(a.reservationId, { actual: 400 }))).toMatchObject({ code: "conflict", details: { result: first } });
    const b = await hold(100);
    const rel = await meter.release(b.reservationId);
    expect(await meter.release(b.reservationId)).toEqual(rel);
    expect(await tokens()).toMatchObject({ used: 100, held: 0 });
  });

  test("committing a released hold, or releasing a committed one, is a conflict", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    const a = await hold(100);
    await meter.release(a.reservationId);
    expect(await error(meter.commit(a.reservationId))).toMatchObject({ code: "conflict", details: { reason: "released" } });
    const b = await hold(100);
    await meter.commit(b.reservationId);
    expect(await error(meter.release(b.reservationId))).toMatchObject({ code: "conflict", details: { reason: "committed" } });
  });

  test("a denial says how much is left and what was required", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    await hold(800);
    expect(await meter.reserve(user, "llm.tokens", 300)).toEqual({ allowed: false, reason: "limit_reached", remaining: 200, required: 300, counter: "tokens", retryAfter: expect.any(Number) as number });
  });

  test("the seed's refund pattern: track the bound, then track the difference on .refund", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    await meter.track(user, "llm.tokens", 700);
    const r = await meter.track(user, "llm.tokens.refund", 450);
    expect(r).toMatchObject({ amount: -450, remaining: 750 });
    expect(await tokens()).toMatchObject({ used: 250 });
    // A refund never gives back more than was used this period.
    expect(await meter.track(user, "llm.tokens.refund", 999)).toMatchObject({ amount: -250, remaining: 1000 });
  });

  test("a user with no subscription gets the default plan when one is configured", async () => {
    const m2 = createMeter({ database: db.url, plans: TEST_PLANS, defaultPlan: "free", sweepInterval: 0 });
    const r = await m2.reserve(`${user}-new`, "tokens", 10);
    expect(r.allowed).toBe(true);
    expect((await m2.usage(`${user}-new`)).planId).toBe("free");
    await m2.close();
  });

  test("custom limits bump a user's quota (the seed's upsertSubscription)", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free", customLimits: { tokens: { quota: 5000 } } });
    expect(await tokens()).toMatchObject({ quota: 5000, remaining: 5000 });
    await meter.upsertSubscription({ userId: user, planId: "free" }); // custom limits are kept when not given
    expect(await tokens()).toMatchObject({ quota: 5000 });
  });
});

describe("expiry", () => {
  test("a hold stops counting exactly at expiresAt, with no sweeper", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    const r = await hold(400, user, { ttl: 30_000 });
    expect(r.expiresAt).toBe("2026-01-15T12:00:30.000Z");
    await clock.set("2026-01-15T12:00:29.999Z");
    expect(await tokens()).toMatchObject({ held: 400 });
    await clock.set("2026-01-15T12:00:30.000Z");
    expect(await tokens()).toMatchObject({ held: 0, remaining: 1000 });
    // And the freed amount can be reserved again.
    await hold(1000);
  });

  test("committing an expired hold is a conflict that says it expired", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    const r = await hold(400, user, { ttl: 1000 });
    await clock.set("2026-01-15T12:00:01.000Z");
    const e = await error(meter.commit(r.reservationId, { actual: 10 }));
    expect(e).toMatchObject({ code: "conflict", details: { reason: "expired", expiresAt: "2026-01-15T12:00:01.000Z" } });
    expect(await tokens()).toMatchObject({ used: 0, held: 0 });
  });

  test("the sweeper records an expire entry for each hold that ran out, once", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    await hold(100, user, { ttl: 1000 });
    await hold(100, user, { ttl: 5000 });
    await clock.set("2026-01-15T12:00:02.000Z");
    expect(await meter.sweepExpired()).toBeGreaterThanOrEqual(1);
    expect(await meter.sweepExpired()).toBe(0);
    const { rows } = await clock.pool.query(`SELECT kind FROM meterkit.entries WHERE user_id = $1 AND kind = 'expire'`, [user]);
    expect(rows).toHaveLength(1);
    expect(await tokens()).toMatchObject({ held: 100 });
  });
});

describe("periods and grants", () => {
  test("the allowance renews with the period; grants do not reset", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    await meter.grant(user, "tokens", 500);
    await meter.track(user, "llm.tokens", 1200); // 1000 allowance + 200 of the grant
    expect(await tokens()).toMatchObject({ used: 1200, granted: 500, remaining: 300 });
    await clock.set("2026-02-01T00:00:00.000Z");
    expect(await tokens()).toMatchObject({ used: 0, granted: 300, remaining: 1300, periodStart: "2026-02-01T00:00:00.000Z" });
  });

  test("allowance is spent first, then grants soonest-expiring first", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    const never = await meter.grant(user, "tokens", 100);
    const late = await meter.grant(user, "tokens", 100, { expiresAt: "2026-06-01T00:00:00Z" });
    const soon = await meter.grant(user, "tokens", 100, { expiresAt: "2026-03-01T00:00:00Z" });
    await meter.track(user, "llm.tokens", 1150);
    const { rows } = await clock.pool.query<{ id: string; remaining: string }>(`SELECT id, remaining FROM meterkit.grants WHERE user_id = $1`, [user]);
    const left = Object.fromEntries(rows.map((r) => [r.id, Number(r.remaining)]));
    expect(left).toEqual({ [soon.grantId]: 0, [late.grantId]: 50, [never.grantId]: 100 });
  });

  test("an expired grant stops counting at its expiry", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    await meter.grant(user, "tokens", 300, { expiresAt: "2026-01-20T00:00:00Z" });
    expect(await tokens()).toMatchObject({ remaining: 1300 });
    await clock.set("2026-01-20T00:00:00Z");
    expect(await tokens()).toMatchObject({ remaining: 1000, granted: 0 });
  });

  test("a hold is admitted only against grants that outlive it", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    await meter.track(user, "llm.tokens", 1000); // the allowance is spent
    await meter.grant(user, "tokens", 500, { expiresAt: "2026-01-15T12:00:10.000Z" });
    expect(await meter.reserve(user, "llm.tokens", 500, { ttl: 60_000 })).toMatchObject({ allowed: false, remaining: 0 });
    const short = await hold(500, user, { ttl: 5_000 });
    await meter.commit(short.reservationId, { actual: 500 });
    const c = await tokens();
    expect(c.used + c.held).toBeLessThanOrEqual(c.quota! + c.granted);
  });

  test("a hold made before a period ends is charged to the period it is committed in", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    await clock.set("2026-01-31T23:59:50.000Z");
    const r = await hold(900);
    await clock.set("2026-02-01T00:00:05.000Z");
    expect(await tokens()).toMatchObject({ used: 0, held: 900, remaining: 100 });
    await meter.commit(r.reservationId, { actual: 300 });
    expect(await tokens()).toMatchObject({ used: 300, held: 0, remaining: 700, periodStart: "2026-02-01T00:00:00.000Z" });
  });

  test("a period of none never renews", async () => {
    await meter.upsertSubscription({ userId: user, planId: "lifetime" });
    await meter.track(user, "llm.tokens", 30);
    await clock.set("2030-01-01T00:00:00.000Z");
    expect(await tokens()).toMatchObject({ used: 30, remaining: 20, periodStart: null, periodEnd: null });
  });

  test("adjust: a positive delta gives usage back and the excess as a grant; a negative one charges", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    await meter.track(user, "llm.tokens", 100);
    expect(await meter.adjust(user, "tokens", 150, { reason: "support ticket 42" })).toMatchObject({ amount: 150, remaining: 1050 });
    expect(await tokens()).toMatchObject({ used: 0, granted: 50 });
    await meter.adjust(user, "tokens", -70, { reason: "correction" });
    expect(await tokens()).toMatchObject({ remaining: 980 });
  });
});

describe("idempotency", () => {
  test("the same idempotencyKey returns the same reservation and holds once", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    const [a, b] = await Promise.all([hold(300, user, { idempotencyKey: "k1" }), hold(300, user, { idempotencyKey: "k1" })]);
    expect(a).toEqual(b);
    expect(await tokens()).toMatchObject({ held: 300 });
  });

  test("a denial is remembered too: the same key is denied again even after credits arrive", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    const d = await meter.reserve(user, "llm.tokens", 5000, { idempotencyKey: "big" });
    expect(d.allowed).toBe(false);
    await meter.grant(user, "tokens", 10_000);
    expect(await meter.reserve(user, "llm.tokens", 5000, { idempotencyKey: "big" })).toEqual(d);
  });

  test("the same key with different arguments is a conflict and writes nothing", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    await meter.track(user, "llm.tokens", 10, { idempotencyKey: "t1" });
    expect(await error(meter.track(user, "llm.tokens", 11, { idempotencyKey: "t1" }))).toMatchObject({ code: "conflict" });
    expect(await tokens()).toMatchObject({ used: 10 });
  });

  test("track, grant and adjust with a key write once", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    for (let i = 0; i < 3; i++) {
      await meter.track(user, "llm.tokens", 10, { idempotencyKey: "t" });
      await meter.grant(user, "tokens", 100, { idempotencyKey: "cs_test_1", source: "purchase" });
      await meter.adjust(user, "tokens", -5, { reason: "r", idempotencyKey: "a" });
    }
    expect(await tokens()).toMatchObject({ used: 15, granted: 100, remaining: 1085 });
  });
});

describe("cents counters price tokens exactly", () => {
  test("a hold on a priced meter is the price of the tokens, rounded up", async () => {
    await meter.upsertSubscription({ userId: user, planId: "pro" });
    // 1,000,000 input tokens of gpt-4o-mini at $0.15 = 15 cents; 1 token rounds up to 1 cent.
    const r = await meter.reserve(user, "llm.cost", 1_000_000, { model: "gpt-4o-mini" });
    expect(r).toMatchObject({ allowed: true, amount: 15 });
    const one = await meter.reserve(user, "llm.cost", 1, { model: "gpt-4o-mini" });
    expect(one).toMatchObject({ allowed: true, amount: 1 });
  });

  test("over many small charges the total never drifts a cent from the exact total", async () => {
    await meter.upsertSubscription({ userId: user, planId: "pro" });
    let exactFine = 0n; // in 10^-16 cent
    for (let i = 0; i < 60; i++) {
      const t = 1234 + i * 977;
      await meter.track(user, "llm.cost", t, { model: "gpt-4o" });
      exactFine += BigInt(t) * 250n * 10n ** 10n; // $2.50 / M = 250 * 10^10 fine per token
      const used = (await meter.usage(user)).counters.find((c) => c.key === "credits")!.used;
      const exact = Number(exactFine) / 1e16;
      expect(exact - used).toBeGreaterThanOrEqual(0);
      expect(exact - used).toBeLessThan(1);
    }
  });

  test("commit { usage } prices input, cached input and output tokens for the hold's model", async () => {
    await meter.upsertSubscription({ userId: user, planId: "pro" });
    const r = await meter.reserve(user, "credits", 100, { model: "gpt-4o" });
    if (!r.allowed) throw new Error("denied");
    // 2,000,000 input (1,000,000 cached) + 1,000,000 output at gpt-4o: 250 + 125 + 1000 = 1375 cents
    const c = await meter.commit(r.reservationId, { usage: { inputTokens: 2_000_000, cachedInputTokens: 1_000_000, outputTokens: 1_000_000 } });
    expect(c).toMatchObject({ committed: 1375, overage: 1275 });
  });

  test("commit { usage } on a tokens counter charges input + output tokens", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    const r = await hold(500);
    expect(await meter.commit(r.reservationId, { usage: { inputTokens: 120, outputTokens: 80 } })).toMatchObject({ committed: 200, refunded: 300 });
  });
});

describe("history", () => {
  test("entries lists the user's ledger entries newest first, with paging and the hold's metadata", async () => {
    await meter.upsertSubscription({ userId: user, planId: "free" });
    const r = await hold(300, user, { metadata: { prompt: 120 } });
    await meter.commit(r.reservationId, { actual: 200 });
    await meter.grant(user, "tokens", 50, { source: "promo" });
    const all = await meter.entries(user);
    expect(all.map((e) => [e.kind, e.amount])).toEqual([["grant", 50], ["commit", 200], ["reserve", 300]]);
    expect(all[1]).toMatchObject({ counter: "tokens", reservationId: r.reservationId, metadata: { held: 300, refunded: 100, overage: 0 } });
    expect(all[2]).toMatchObject({ metadata: { prompt: 120 }, at: "2026-01-15T12:00:00.000Z" });
    const page = await meter.entries(user, { limit: 1, before: all[0]!.id });
    expect(page.map((e) => e.kind)).toEqual(["commit"]);
    await expect(meter.entries(user, { limit: -1 })).rejects.toMatchObject({ code: "invalid_request" });
  });

  test("usageByDay sums what was charged per UTC day by the database clock, every day listed", async () => {
    await meter.upsertSubscription({ userId: user, planId: "lifetime" });
    await clock.set("2026-01-13T23:59:00.000Z");
    await meter.track(user, "llm.tokens", 10);
    await clock.set("2026-01-15T08:00:00.000Z");
    await meter.track(user, "llm.tokens", 7);
    await meter.track(user, "llm.tokens.refund", 2);
    expect(await meter.usageByDay(user, { days: 3 })).toEqual([
      { day: "2026-01-13", used: 10, charges: 1 },
      { day: "2026-01-14", used: 0, charges: 0 },
      { day: "2026-01-15", used: 5, charges: 1 },
    ]);
  });
});
