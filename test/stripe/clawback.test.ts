import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { clockPool } from "../helpers/clock.js";
import { freshDatabase } from "../helpers/db.js";
import { paidSession, refundedCharge, stripeEvent, stripeTest, type StripeTest } from "./helpers.js";

let t: StripeTest;
beforeAll(async () => {
  // A plan without allowance, so every credit comes from packs and the numbers read plainly.
  t = await stripeTest({
    meter: {
      plans: { credits: { limits: { tokens: { quota: 0, period: "month" } } } },
      meters: { "llm.tokens": { counter: "tokens" } },
      defaultPlan: "credits",
    },
  });
});
afterAll(async () => {
  await t?.cleanup();
});

async function buy(userId: string, o: { credits?: number; amount?: number } = {}) {
  const session = paidSession(userId, o);
  await t.deliver(stripeEvent("checkout.session.completed", session));
  return session;
}

async function spend(userId: string, amount: number) {
  const r = await t.meter.reserve(userId, "llm.tokens", amount);
  if (!r.allowed) throw new Error(`could not reserve ${amount}`);
  await t.meter.commit(r.reservationId, { actual: amount });
}

/** What the user could spend: negative when they owe (the usage JSON clamps at 0). */
async function available(userId: string): Promise<number> {
  const s = t.meter.internals.schema;
  const { rows } = await t.meter.internals.pool.query<{ a: string }>(`SELECT ${s}.available(${s}.context($1, 'tokens')) AS a`, [userId]);
  return Number(rows[0]!.a);
}

async function entries(userId: string) {
  const s = t.meter.internals.schema;
  const { rows } = await t.meter.internals.pool.query<{ kind: string; amount: string; grant_id: string }>(
    `SELECT kind, amount, grant_id FROM ${s}.entries WHERE user_id = $1 AND kind IN ('grant', 'clawback', 'debt', 'settle') ORDER BY id`,
    [userId],
  );
  return rows.map((r) => ({ kind: r.kind, amount: Number(r.amount) }));
}

describe("refunds", () => {
  test("a full refund of an unspent pack takes every credit back", async () => {
    const s = await buy("r1");
    expect(await available("r1")).toBe(10_000);
    await t.deliver(stripeEvent("charge.refunded", refundedCharge(s.payment_intent, 500)));
    expect(await available("r1")).toBe(0);
    expect(await entries("r1")).toEqual([
      { kind: "grant", amount: 10_000 },
      { kind: "clawback", amount: 10_000 },
    ]);
    expect(await t.meter.audit("r1")).toEqual([]);
  });

  test("buy, spend, refund: the unspent part is taken back and the spent part becomes debt", async () => {
    const s = await buy("r2");
    await spend("r2", 7_000);
    await t.deliver(stripeEvent("charge.refunded", refundedCharge(s.payment_intent, 500)));
    expect(await available("r2")).toBe(0);
    expect(await entries("r2")).toEqual([
      { kind: "grant", amount: 10_000 },
      { kind: "clawback", amount: 3_000 },
      { kind: "debt", amount: 7_000 },
    ]);
    expect((await t.meter.usage("r2")).counters[0]).toMatchObject({ debt: 7_000, remaining: 0, granted: 7_000 });
    expect(await t.meter.audit("r2")).toEqual([]);
    // They cannot spend on credit they no longer have…
    expect((await t.meter.reserve("r2", "llm.tokens", 1)).allowed).toBe(false);
    // …and a new pack first pays the debt back, once.
    await buy("r2");
    expect(await available("r2")).toBe(3_000);
    expect((await t.meter.usage("r2")).counters[0]).not.toHaveProperty("debt");
    expect((await entries("r2")).slice(3)).toEqual([
      { kind: "grant", amount: 10_000 },
      { kind: "settle", amount: 7_000 },
    ]);
    expect(await t.meter.audit("r2")).toEqual([]);
  });

  test("the live balance is notified when credits are clawed back", async () => {
    const s = await buy("r-live");
    const before = (await t.meter.usage("r-live")).version;
    await t.deliver(stripeEvent("charge.refunded", refundedCharge(s.payment_intent, 500)));
    expect((await t.meter.usage("r-live")).version).toBeGreaterThan(before);
  });

  test("partial refunds take back credits in proportion, rounded up, cumulatively", async () => {
    const s = await buy("r3", { credits: 1_000, amount: 300 });
    await t.deliver(stripeEvent("charge.refunded", refundedCharge(s.payment_intent, 100, 300)));
    expect(await available("r3")).toBe(666); // ceil(1000 / 3) = 334 back
    await t.deliver(stripeEvent("charge.refunded", refundedCharge(s.payment_intent, 200, 300)));
    expect(await available("r3")).toBe(333); // 667 back in all
    await t.deliver(stripeEvent("charge.refunded", refundedCharge(s.payment_intent, 300, 300)));
    expect(await available("r3")).toBe(0);
    expect(await t.meter.audit("r3")).toEqual([]);
  });

  test("a refund event delivered twice, or concurrently, takes back once", async () => {
    const s = await buy("r4");
    const event = stripeEvent("charge.refunded", refundedCharge(s.payment_intent, 250));
    const results = await Promise.all(Array.from({ length: 5 }, () => t.deliver(event)));
    expect(results.filter((r) => r.duplicate)).toHaveLength(4);
    expect(await available("r4")).toBe(5_000);
    // A later event repeating the same cumulative amount changes nothing either.
    await t.deliver(stripeEvent("charge.refunded", refundedCharge(s.payment_intent, 250)));
    expect(await available("r4")).toBe(5_000);
  });

  test("a refund that arrives before the grant is applied when the grant is made", async () => {
    const session = paidSession("r5");
    await t.deliver(stripeEvent("charge.refunded", refundedCharge(session.payment_intent, 500)));
    await t.deliver(stripeEvent("checkout.session.completed", session));
    expect(await available("r5")).toBe(0);
    expect(await t.meter.audit("r5")).toEqual([]);
  });

  test("a refund of a payment that is not a pack changes no balance", async () => {
    const before = await available("r6");
    expect(await t.deliver(stripeEvent("charge.refunded", refundedCharge("pi_not_ours", 500)))).toEqual({ received: true });
    expect(await available("r6")).toBe(before);
  });

  test("a usage refund after a clawback goes back to the pack it was spent from, not to the refunded pack", async () => {
    await buy("r-back"); // first pack: 500 of it get spent
    await spend("r-back", 500);
    const refunded = await buy("r-back"); // second pack: refunded in full before any use
    await t.deliver(stripeEvent("charge.refunded", refundedCharge(refunded.payment_intent, 500)));
    await t.meter.track("r-back", "llm.tokens.refund", 500);
    const s = t.meter.internals.schema;
    const { rows } = await t.meter.internals.pool.query<{ remaining: string }>(
      `SELECT remaining FROM ${s}.grants WHERE user_id = 'r-back' ORDER BY created_at, id`,
    );
    expect(rows.map((r) => Number(r.remaining))).toEqual([10_000, 0]);
    expect(await available("r-back")).toBe(10_000);
    expect(await t.meter.audit("r-back")).toEqual([]);
  });

  test("a charge without a payment intent is ignored", async () => {
    const charge = { ...refundedCharge("x", 500), payment_intent: null };
    expect(await t.deliver(stripeEvent("charge.refunded", charge))).toEqual({ received: true, ignored: true });
  });
});

describe("disputes", () => {
  test("a dispute after partial spend takes the rest back and records the spent part as debt", async () => {
    const s = await buy("d1");
    await spend("d1", 4_000);
    await t.deliver(
      stripeEvent("charge.dispute.created", { id: "dp_1", object: "dispute", amount: 500, charge: "ch_1", payment_intent: s.payment_intent, status: "needs_response" }),
    );
    expect(await available("d1")).toBe(0);
    expect((await t.meter.usage("d1")).counters[0]).toMatchObject({ debt: 4_000 });
    expect(await t.meter.audit("d1")).toEqual([]);
  });

  test("a dispute after a partial refund takes back only what was not already taken", async () => {
    const s = await buy("d2");
    await t.deliver(stripeEvent("charge.refunded", refundedCharge(s.payment_intent, 100)));
    expect(await available("d2")).toBe(8_000);
    await t.deliver(
      stripeEvent("charge.dispute.created", { id: "dp_2", object: "dispute", amount: 400, charge: "ch_2", payment_intent: s.payment_intent, status: "needs_response" }),
    );
    expect(await available("d2")).toBe(0);
    const s2 = t.meter.internals.schema;
    const { rows } = await t.meter.internals.pool.query(`SELECT clawed FROM ${s2}.stripe_payments WHERE payment_intent = $1`, [s.payment_intent]);
    expect(rows[0].clawed).toBe("10000");
  });
});

describe("a debt is collected exactly once", () => {
  // The numbers: 1,000 tokens a month, 1,300 spent (300 of them from a 5,000 pack), the
  // pack refunded in full. The debt (300) must be paid once by the next credit, and never withheld
  // from the allowance of later months.
  let d: StripeTest;
  let db: { url: string; drop: () => Promise<void> };
  let clock: ReturnType<typeof clockPool>;
  beforeAll(async () => {
    db = await freshDatabase();
    clock = clockPool(db.url);
    d = await stripeTest({
      meter: {
        database: clock.pool,
        plans: { monthly: { limits: { tokens: { quota: 1_000, period: "month" } } } },
        meters: { "llm.tokens": { counter: "tokens" } },
        defaultPlan: "monthly",
      },
    });
  });
  afterAll(async () => {
    await d?.cleanup();
    await clock?.pool.end();
    await db?.drop();
  });

  const month = (m: number) => clock.set(new Date(Date.UTC(2026, m, 10, 12)));
  const tokens = async (u: string) => (await d.meter.usage(u)).counters[0]!;
  async function settled(u: string) {
    const s = d.meter.internals.schema;
    const { rows } = await d.meter.internals.pool.query<{ n: string; total: string | null }>(
      `SELECT count(*) AS n, sum(amount) AS total FROM ${s}.entries WHERE user_id = $1 AND kind = 'settle'`,
      [u],
    );
    return { entries: Number(rows[0]!.n), total: Number(rows[0]!.total ?? 0) };
  }
  async function spendOn(u: string, amount: number) {
    const r = await d.meter.reserve(u, "llm.tokens", amount);
    if (!r.allowed) throw new Error(`could not reserve ${amount}`);
    await d.meter.commit(r.reservationId, { actual: amount });
  }

  test("the allowance is never withheld for it, month after month, and the next pack pays it once", async () => {
    await month(0);
    const pack = paidSession("debt-1", { credits: 5_000 });
    await d.deliver(stripeEvent("checkout.session.completed", pack));
    await spendOn("debt-1", 1_300);
    await d.deliver(stripeEvent("charge.refunded", refundedCharge(pack.payment_intent, 500)));
    expect(await tokens("debt-1")).toMatchObject({ used: 1_300, granted: 300, remaining: 0, debt: 300 });
    for (let m = 1; m <= 6; m++) {
      await month(m);
      // Each new month: the whole allowance, nothing withheld, the debt still owed once.
      expect(await tokens("debt-1")).toMatchObject({ quota: 1_000, granted: 0, used: 0, remaining: 1_000, debt: 300 });
      await spendOn("debt-1", 400);
    }
    // The next pack pays the 300 at once; the rest is spendable.
    await month(7);
    await d.deliver(stripeEvent("checkout.session.completed", paidSession("debt-1", { credits: 5_000 })));
    expect(await tokens("debt-1")).toMatchObject({ granted: 4_700, remaining: 5_700 });
    expect(await tokens("debt-1")).not.toHaveProperty("debt");
    // Later months and later packs never collect it again.
    for (let m = 8; m <= 10; m++) {
      await month(m);
      expect(await tokens("debt-1")).toMatchObject({ granted: 4_700, remaining: 5_700 });
    }
    await d.deliver(stripeEvent("checkout.session.completed", paidSession("debt-1", { credits: 1_000 })));
    expect(await tokens("debt-1")).toMatchObject({ granted: 5_700 });
    expect(await settled("debt-1")).toEqual({ entries: 1, total: 300 });
    expect(await d.meter.audit("debt-1")).toEqual([]);
  });

  test("credits the user still holds pay it at once; a manual grant pays the rest before it can be spent", async () => {
    await month(0);
    const a = paidSession("debt-2", { credits: 5_000 });
    const b = paidSession("debt-2", { credits: 2_000 });
    await d.deliver(stripeEvent("checkout.session.completed", a));
    await spendOn("debt-2", 5_000); // 1,000 of allowance, then 4,000 of pack a
    await d.deliver(stripeEvent("checkout.session.completed", b));
    await d.deliver(stripeEvent("charge.refunded", refundedCharge(a.payment_intent, 500)));
    // 1,000 unspent clawed back from a; 4,000 owed, 2,000 of it paid by pack b at once.
    expect(await tokens("debt-2")).toMatchObject({ remaining: 0, debt: 2_000 });
    const g = await d.meter.grant("debt-2", "tokens", 3_000, { source: "promo" });
    expect(g).toMatchObject({ debtPaid: 2_000, remaining: 1_000 });
    expect(await tokens("debt-2")).not.toHaveProperty("debt");
    expect(await settled("debt-2")).toEqual({ entries: 2, total: 4_000 });
    await month(1);
    expect(await tokens("debt-2")).toMatchObject({ remaining: 2_000, granted: 1_000 });
    expect(await d.meter.audit("debt-2")).toEqual([]);
  });

  test("audit() reports a debt collected twice", async () => {
    await month(0);
    const pack = paidSession("debt-3", { credits: 1_000 });
    await d.deliver(stripeEvent("checkout.session.completed", pack));
    await spendOn("debt-3", 1_500);
    await d.deliver(stripeEvent("charge.refunded", refundedCharge(pack.payment_intent, 500)));
    await d.meter.grant("debt-3", "tokens", 2_000);
    expect(await d.meter.audit("debt-3")).toEqual([]);
    // Forge a second collection of the same debt, as a bug would.
    const s = d.meter.internals.schema;
    await d.meter.internals.pool.query(
      `INSERT INTO ${s}.entries (user_id, counter_key, kind, amount, grant_id, metadata)
       SELECT user_id, counter_key, 'settle', amount, grant_id, metadata FROM ${s}.entries WHERE user_id = 'debt-3' AND kind = 'settle'`,
    );
    const fields = (await d.meter.audit("debt-3")).map((x) => x.field);
    expect(fields).toContain("debt_collected_twice");
  });
});
