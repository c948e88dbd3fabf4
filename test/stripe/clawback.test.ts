import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { paidSession, refundedCharge, stripeEvent, stripeTest, type StripeTest } from "./helpers.js";
import { internalsOf } from "../../src/server/internals.js";

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
  const s = internalsOf(t.meter).schema;
  const { rows } = await internalsOf(t.meter).pool.query<{ a: string }>(`SELECT ${s}.available(${s}.context($1, 'tokens')) AS a`, [userId]);
  return Number(rows[0]!.a);
}

async function entries(userId: string) {
  const s = internalsOf(t.meter).schema;
  const { rows } = await internalsOf(t.meter).pool.query<{ kind: string; amount: string; grant_id: string }>(
    `SELECT kind, amount, grant_id FROM ${s}.entries WHERE user_id = $1 AND kind IN ('grant', 'clawback') ORDER BY id`,
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
    expect(await available("r2")).toBe(-7_000);
    expect(await entries("r2")).toEqual([
      { kind: "grant", amount: 10_000 },
      { kind: "clawback", amount: 3_000 },
      { kind: "grant", amount: -7_000 },
    ]);
    const sch = internalsOf(t.meter).schema;
    const { rows } = await internalsOf(t.meter).pool.query(`SELECT amount, remaining, source FROM ${sch}.grants WHERE user_id = 'r2' AND source = 'debt'`);
    expect(rows).toEqual([{ amount: "-7000", remaining: "-7000", source: "debt" }]);
    expect(await t.meter.audit("r2")).toEqual([]);
    // They cannot spend on credit they no longer have…
    expect((await t.meter.reserve("r2", "llm.tokens", 1)).allowed).toBe(false);
    // …and a new pack first pays the debt back.
    await buy("r2");
    expect(await available("r2")).toBe(3_000);
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
    const s = internalsOf(t.meter).schema;
    const { rows } = await internalsOf(t.meter).pool.query<{ remaining: string }>(
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
    expect(await available("d1")).toBe(-4_000);
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
    const s2 = internalsOf(t.meter).schema;
    const { rows } = await internalsOf(t.meter).pool.query(`SELECT clawed FROM ${s2}.stripe_payments WHERE payment_intent = $1`, [s.payment_intent]);
    expect(rows[0].clawed).toBe("10000");
  });
});
