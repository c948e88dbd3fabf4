import { internalsOf } from "../../src/server/internals.js";
import { afterEach, describe, expect, test } from "vitest";
import { clockPool } from "../helpers/clock.js";
import { topUpTest, type TopUpTest } from "./autoTopUpHelpers.js";

let t: TopUpTest;
afterEach(async () => {
  await t?.cleanup();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Spends `amount` tokens for `userId` (a committed reservation), then lets the after-commit observer run. */
async function spend(userId: string, amount: number, meter = t.meter) {
  const r = await meter.reserve(userId, "llm.tokens", amount);
  if (!r.allowed) throw new Error("limit reached");
  await meter.commit(r.reservationId, { actual: amount });
}

async function settle(meter = t.meter) {
  await internalsOf(meter).notifier.flush();
  await sleep(20);
  await meter.autoTopUp.flush();
}

const STARTER = { counter: "tokens", enabled: true, packId: "starter", threshold: 500, maxPerPeriod: 1500 };

describe("settings", () => {
  test("auto top-up is off until the user turns it on; a card saved through Checkout setup mode is remembered", async () => {
    t = await topUpTest();
    expect(await t.meter.autoTopUp.get("ann")).toEqual({ paymentMethodSaved: false, counters: [] });
    await t.saveCard("ann");
    const session = [...t.standIn.sessions.values()][0]!;
    expect(session.mode).toBe("setup");
    expect(session.intentData.metadata).toMatchObject({ meterkit_user_id: "ann" });
    const state = await t.meter.autoTopUp.set("ann", STARTER);
    expect(state).toMatchObject({ counter: "tokens", enabled: true, status: "active", packId: "starter", threshold: 500, maxPerPeriod: 1500, currency: "usd", inFlight: false });
    expect(await t.meter.autoTopUp.get("ann")).toMatchObject({ paymentMethodSaved: true, counters: [{ counter: "tokens", status: "active" }] });
    expect(await t.meter.autoTopUp.disable("ann", "tokens")).toMatchObject({ enabled: false, status: "off" });
  });

  test("bad settings are invalid_request: unknown fields, a pack of another counter, a ceiling below the pack's price", async () => {
    t = await topUpTest();
    await expect(t.meter.autoTopUp.set("ann", { ...STARTER, extra: 1 } as never)).rejects.toMatchObject({ code: "invalid_request" });
    await expect(t.meter.autoTopUp.set("ann", { ...STARTER, maxPerPeriod: 499 })).rejects.toMatchObject({ code: "invalid_request" });
    await expect(t.meter.autoTopUp.set("ann", { ...STARTER, threshold: 0 })).rejects.toMatchObject({ code: "invalid_request" });
    await expect(t.meter.autoTopUp.set("ann", { ...STARTER, packId: "nope" })).rejects.toMatchObject({ code: "invalid_request" });
    await expect(t.meter.autoTopUp.set("ann", { counter: "tokens", enabled: true })).rejects.toMatchObject({ code: "invalid_request" });
    await expect(t.meter.autoTopUp.set("ann", { ...STARTER, counter: "nope" })).rejects.toMatchObject({ code: "not_found" });
  });
});

describe("the trigger rule", () => {
  test("the first change that takes remaining below the threshold arms one top-up; staying below arms nothing more", async () => {
    t = await topUpTest();
    await t.saveCard("ann");
    await t.meter.autoTopUp.set("ann", STARTER);
    await spend("ann", 400); // 600 left: above
    await settle();
    expect((await t.meter.autoTopUp.run()).succeeded).toHaveLength(0);
    await spend("ann", 200); // 400 left: crossed
    await spend("ann", 100); // 300: still below, no second trigger
    await settle();
    const first = await t.meter.autoTopUp.run();
    expect(first.succeeded).toHaveLength(1);
    expect(await t.remaining("ann")).toBe(300 + 10_000);
    await t.relay(); // payment_intent.succeeded: the same grant, a duplicate
    expect(await t.remaining("ann")).toBe(300 + 10_000);
    expect(t.charges()).toHaveLength(1);
    expect(t.charges()[0]!.body).toMatchObject({ amount: "500", currency: "usd", off_session: "true", confirm: "true" });
    // Down through the threshold again: a new crossing, a new trigger with its own key.
    await spend("ann", 10_000);
    await settle();
    expect((await t.meter.autoTopUp.run()).succeeded).toHaveLength(1);
    const keys = t.charges().map((c) => c.idempotencyKey);
    expect(new Set(keys).size).toBe(2);
  });

  test("enabling while already below fires at once", async () => {
    t = await topUpTest();
    await t.saveCard("bob");
    await spend("bob", 900); // 100 left
    await settle();
    await t.meter.autoTopUp.set("bob", STARTER);
    expect((await t.meter.autoTopUp.get("bob")).counters[0]).toMatchObject({ inFlight: true });
    expect((await t.meter.autoTopUp.run()).succeeded).toHaveLength(1);
    expect(await t.remaining("bob")).toBe(100 + 10_000);
  });

  test("spending a week's whole quota counts like any other drop", async () => {
    t = await topUpTest();
    await t.meter.upsertSubscription({ userId: "wes", planId: "weekly" });
    await t.saveCard("wes");
    await t.meter.autoTopUp.set("wes", STARTER);
    await spend("wes", 1000); // 0 left: the weekly limit is spent
    await settle();
    expect((await t.meter.autoTopUp.run()).succeeded).toHaveLength(1);
    expect(await t.remaining("wes")).toBe(10_000);
  });

  test("the per-period ceiling is never exceeded: the crossing that would pass it charges nothing", async () => {
    t = await topUpTest();
    await t.saveCard("cy");
    await t.meter.autoTopUp.set("cy", { ...STARTER, maxPerPeriod: 1000 }); // two packs
    for (let i = 0; i < 3; i++) {
      const left = (await t.remaining("cy"))!; // a limited counter
      await spend("cy", left - 100); // cross again
      await settle();
      await t.meter.autoTopUp.run();
    }
    expect(t.charges()).toHaveLength(2);
    expect(await t.remaining("cy")).toBe(100);
    expect((await t.meter.autoTopUp.get("cy")).counters[0]).toMatchObject({ spentThisPeriod: 1000, status: "active", inFlight: false });
  });

  test("an unlimited counter is never below a threshold: spending arms nothing", async () => {
    t = await topUpTest();
    await t.meter.upsertSubscription({ userId: "una", planId: "endless" });
    await t.saveCard("una");
    await t.meter.autoTopUp.set("una", STARTER);
    await spend("una", 50_000);
    await settle();
    await t.meter.autoTopUp.run();
    expect(await t.remaining("una")).toBeNull();
    expect(t.charges()).toHaveLength(0);
    expect((await t.meter.autoTopUp.get("una")).counters[0]).toMatchObject({ status: "active", inFlight: false });
  });

  // The 64-way concurrency tests, and a test per guard that fails without it, are in
  // autoTopUpGuards.test.ts.
});

describe("charging", () => {
  test("a worker that dies after Stripe charged and before the grant: the next worker replays the same charge, credited once", async () => {
    t = await topUpTest();
    await t.saveCard("eve");
    await t.meter.autoTopUp.set("eve", STARTER);
    await spend("eve", 600);
    await settle();
    // Process A: Stripe takes the charge, the answer never comes back; A is stuck (as if gone).
    const a = t.another({ autoTopUp: { interval: 0, leaseMs: 300, requestTimeoutMs: 60_000 } });
    t.standIn.fail({ path: "/v1/payment_intents", mode: "accept-then-timeout" });
    const stuck = a.autoTopUp.run();
    for (let i = 0; i < 200 && t.standIn.paymentIntents.size === 0; i++) await sleep(10);
    expect(t.standIn.paymentIntents.size).toBe(1);
    expect(await t.remaining("eve")).toBe(400);
    await sleep(350); // A's lease runs out
    // Process B takes the row over and sends the same idempotency key: Stripe replays the charge.
    const b = t.another({ autoTopUp: { interval: 0, leaseMs: 300 } });
    expect((await b.autoTopUp.run()).succeeded).toHaveLength(1);
    await t.relay(); // and the webhook of the one charge
    expect(await t.remaining("eve")).toBe(400 + 10_000);
    const keys = t.charges().map((c) => c.idempotencyKey);
    expect(keys).toHaveLength(2);
    expect(new Set(keys).size).toBe(1);
    expect(t.standIn.paymentIntents.size).toBe(1);
    t.standIn.clearFailures(); // A finally hears back (a 500): its lease is gone, it changes nothing
    await stuck;
    expect(await t.remaining("eve")).toBe(400 + 10_000);
    expect(await t.meter.audit("eve")).toEqual([]);
  });

  test("a Stripe outage is retried later with the same key; nothing pauses", async () => {
    t = await topUpTest();
    await t.saveCard("fay");
    await t.meter.autoTopUp.set("fay", STARTER);
    await spend("fay", 600);
    await settle();
    t.standIn.fail({ path: "/v1/payment_intents", status: 503 });
    const first = await t.meter.autoTopUp.run();
    expect(first.retrying).toHaveLength(1);
    expect((await t.meter.autoTopUp.get("fay")).counters[0]).toMatchObject({ status: "active", inFlight: true });
    await internalsOf(t.meter).pool.query(`UPDATE ${internalsOf(t.meter).schema}.auto_top_up_charges SET next_attempt_at = now()`);
    expect((await t.meter.autoTopUp.run()).succeeded).toHaveLength(1);
    expect(new Set(t.charges().map((c) => c.idempotencyKey)).size).toBe(1);
  });

  test("a declined card pauses auto top-up with the reason and is not retried; saving a new card resumes it and fires at once", async () => {
    t = await topUpTest();
    t.standIn.nextCard = "decline";
    await t.saveCard("gus");
    await t.meter.autoTopUp.set("gus", STARTER);
    await spend("gus", 600);
    await settle();
    expect((await t.meter.autoTopUp.run()).failed).toHaveLength(1);
    await t.relay(); // payment_intent.payment_failed changes nothing more
    expect((await t.meter.autoTopUp.get("gus")).counters[0]).toMatchObject({
      enabled: true,
      status: "paused",
      pausedReason: "card_declined",
      pausedMessage: "Your card was declined.",
      inFlight: false,
    });
    // No blind retry: more drops, more runs, no new charge.
    await spend("gus", 100);
    await settle();
    await t.meter.autoTopUp.run();
    expect(t.charges()).toHaveLength(1);
    // The fix: a new card (Checkout setup mode) resumes, and fires at once since remaining is below.
    t.standIn.nextCard = "succeed";
    await t.saveCard("gus");
    expect((await t.meter.autoTopUp.get("gus")).counters[0]).toMatchObject({ status: "active", inFlight: true });
    expect((await t.meter.autoTopUp.run()).succeeded).toHaveLength(1);
    expect(await t.remaining("gus")).toBe(300 + 10_000);
  });

  test("a card that needs 3-D Secure pauses with requires_action, no retry", async () => {
    t = await topUpTest();
    t.standIn.nextCard = "requires_action";
    await t.saveCard("hal");
    await t.meter.autoTopUp.set("hal", STARTER);
    await spend("hal", 600);
    await settle();
    expect((await t.meter.autoTopUp.run()).failed).toHaveLength(1);
    expect((await t.meter.autoTopUp.get("hal")).counters[0]).toMatchObject({ status: "paused", pausedReason: "requires_action" });
    await t.meter.autoTopUp.run();
    expect(t.charges()).toHaveLength(1);
    expect(await t.remaining("hal")).toBe(400);
  });

  test("without a saved card the trigger pauses with no_payment_method", async () => {
    t = await topUpTest();
    await t.meter.autoTopUp.set("ida", STARTER);
    await spend("ida", 600);
    await settle();
    expect((await t.meter.autoTopUp.run()).failed).toHaveLength(1);
    expect((await t.meter.autoTopUp.get("ida")).counters[0]).toMatchObject({ status: "paused", pausedReason: "no_payment_method" });
    expect(t.charges()).toHaveLength(0);
  });

  test("a refund of an automatic top-up claws its credits back like a bought pack", async () => {
    t = await topUpTest();
    await t.saveCard("jo");
    await t.meter.autoTopUp.set("jo", STARTER);
    await spend("jo", 600);
    await settle();
    await t.meter.autoTopUp.run();
    await t.relay();
    expect(await t.remaining("jo")).toBe(10_400);
    const pi = [...t.standIn.paymentIntents.keys()][0]!;
    await t.stripe.refunds.create({ payment_intent: pi });
    await t.relay();
    expect(await t.remaining("jo")).toBe(400);
  });

  test("a pack bought with saveCard sets setup_future_usage; the card is stored from payment_intent.succeeded and the pack credited once", async () => {
    t = await topUpTest();
    const { url } = await internalsOf(t.meter).billing!.checkout("kim", { packId: "starter", saveCard: true });
    const session = t.standIn.sessions.get(url.split("/").pop()!)!;
    expect(session.intentData.setup_future_usage).toBe("off_session");
    await expect(internalsOf(t.meter).billing!.checkout("kim", { packId: "starter", saveCard: "yes" })).rejects.toMatchObject({ code: "invalid_request" });
    await t.standIn.pay(session.id);
    await t.relay();
    expect(await t.remaining("kim")).toBe(11_000); // the pack, once
    expect((await t.meter.autoTopUp.get("kim")).paymentMethodSaved).toBe(true);
  });
});

describe("periods", () => {
  test("the ceiling counts per period of the counter: blocked in November, charged again in December", async () => {
    t = await topUpTest();
    const clock = clockPool(t.url);
    try {
      await clock.set("2026-11-10T00:00:00Z");
      const m = t.another({ database: clock.pool });
      await t.saveCard("liz");
      await m.autoTopUp.set("liz", { ...STARTER, maxPerPeriod: 500 }); // one pack a month
      await spend("liz", 600, m);
      await settle(m);
      expect((await m.autoTopUp.run()).succeeded).toHaveLength(1);
      await spend("liz", 10_000, m); // 400 left: crossed again, but November's ceiling is reached
      await settle(m);
      await m.autoTopUp.run();
      expect(t.charges()).toHaveLength(1);
      expect(await m.usage("liz").then((u) => u.counters[0]!.remaining)).toBe(400);
      await clock.set("2026-12-10T00:00:00Z"); // December: 1000 + 400 left, above the threshold
      await spend("liz", 1000, m); // 400: a crossing in the new period
      await settle(m);
      expect((await m.autoTopUp.run()).succeeded).toHaveLength(1);
      expect(t.charges()).toHaveLength(2);
      expect((await m.autoTopUp.get("liz")).counters[0]).toMatchObject({ spentThisPeriod: 500 });
    } finally {
      await clock.pool.end();
    }
  });
});

describe("settings changes by idempotency key", () => {
  test("set and disable with the same key and arguments apply once and answer the first state; other arguments are conflict", async () => {
    t = await topUpTest();
    await t.saveCard("kim");
    const first = await t.meter.autoTopUp.set("kim", STARTER, { idempotencyKey: "on-1" });
    // A decline pauses it since; a retry of the same "turn on" must not clear that pause.
    await internalsOf(t.meter).pool.query(
      `UPDATE ${internalsOf(t.meter).schema}.auto_top_up SET status = 'paused', paused_reason = 'card_declined' WHERE user_id = 'kim'`,
    );
    expect(await t.meter.autoTopUp.set("kim", { ...STARTER }, { idempotencyKey: "on-1" })).toEqual(first);
    expect((await t.meter.autoTopUp.get("kim")).counters[0]).toMatchObject({ status: "paused", pausedReason: "card_declined" });
    await expect(t.meter.autoTopUp.set("kim", { ...STARTER, threshold: 600 }, { idempotencyKey: "on-1" })).rejects.toMatchObject({ code: "conflict" });
    await expect(t.meter.autoTopUp.disable("kim", "tokens", { idempotencyKey: "on-1" })).rejects.toMatchObject({ code: "conflict" });
    const off = await t.meter.autoTopUp.disable("kim", "tokens", { idempotencyKey: "off-1" });
    await t.meter.autoTopUp.set("kim", STARTER); // on again, no key
    expect(await t.meter.autoTopUp.disable("kim", "tokens", { idempotencyKey: "off-1" })).toEqual(off);
    expect((await t.meter.autoTopUp.get("kim")).counters[0]).toMatchObject({ enabled: true, status: "active" });
  });
});
