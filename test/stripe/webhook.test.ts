import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { MeterError } from "../../src/server/index.js";
import { WEBHOOK_SECRET, paidSession, stripeEvent, stripeTest, type StripeTest } from "./helpers.js";
import { internalsOf } from "../../src/server/internals.js";

let t: StripeTest;
beforeAll(async () => {
  t = await stripeTest({ stripe: { webhookSecret: [WEBHOOK_SECRET, "whsec_next_secret_after_rotation"] } });
});
afterAll(async () => {
  await t?.cleanup();
});

const ALLOWANCE = 1000; // the free plan's monthly tokens

async function rowCounts() {
  const s = internalsOf(t.meter).schema;
  const { rows } = await internalsOf(t.meter).pool.query<{ events: number; grants: number; entries: number }>(
    `SELECT (SELECT count(*) FROM ${s}.stripe_events)::int AS events, (SELECT count(*) FROM ${s}.grants)::int AS grants,
            (SELECT count(*) FROM ${s}.entries)::int AS entries`,
  );
  return rows[0]!;
}

async function rejects(p: Promise<unknown>) {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MeterError);
  expect((err as MeterError).code).toBe("invalid_request");
  expect((err as MeterError).status).toBe(400);
}

describe("signature", () => {
  test("a forged signature (another secret) is refused and writes nothing", async () => {
    const before = await rowCounts();
    await rejects(t.deliver(stripeEvent("checkout.session.completed", paidSession("forger")), { secret: "whsec_attacker" }));
    expect(await rowCounts()).toEqual(before);
    expect(await t.remaining("forger")).toBe(ALLOWANCE);
  });

  test("a tampered body (signed, then the credits changed) is refused", async () => {
    const payload = JSON.stringify(stripeEvent("checkout.session.completed", paidSession("tamper", { credits: 10 })));
    const header = t.stripe.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET });
    await rejects(t.webhook(payload.replace('"meterkit_credits":"10"', '"meterkit_credits":"99999"'), header));
    expect(await t.remaining("tamper")).toBe(ALLOWANCE);
  });

  test("a body re-serialised by a JSON parser fails the check: the raw bytes are what is signed", async () => {
    const payload = JSON.stringify(stripeEvent("checkout.session.completed", paidSession("reparsed")), null, 2);
    const header = t.stripe.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET });
    await rejects(t.webhook(JSON.stringify(JSON.parse(payload)), header));
  });

  test("an unsigned delivery (no Stripe-Signature header) is refused", async () => {
    await rejects(t.webhook(JSON.stringify(stripeEvent("checkout.session.completed", paidSession("unsigned"))), null));
    await rejects(t.webhook(JSON.stringify(stripeEvent("checkout.session.completed", paidSession("unsigned"))), ""));
    expect(await t.remaining("unsigned")).toBe(ALLOWANCE);
  });

  test("a signature older than 300 s is refused; one 250 s old is accepted", async () => {
    const now = Math.floor(Date.now() / 1000);
    await rejects(t.deliver(stripeEvent("checkout.session.completed", paidSession("stale")), { timestamp: now - 301 }));
    expect(await t.remaining("stale")).toBe(ALLOWANCE);
    await t.deliver(stripeEvent("checkout.session.completed", paidSession("stale")), { timestamp: now - 250 });
    expect(await t.remaining("stale")).toBe(ALLOWANCE + 10_000);
  });

  test("during a secret rotation, deliveries signed with either secret are accepted", async () => {
    await t.deliver(stripeEvent("checkout.session.completed", paidSession("rotating")), { secret: WEBHOOK_SECRET });
    await t.deliver(stripeEvent("checkout.session.completed", paidSession("rotating")), { secret: "whsec_next_secret_after_rotation" });
    expect(await t.remaining("rotating")).toBe(ALLOWANCE + 20_000);
  });

  test("a signed body that is not JSON is refused as bad input, not a 500", async () => {
    const payload = "not json";
    const header = t.stripe.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET });
    await rejects(t.webhook(payload, header));
  });
});

describe("granting", () => {
  test("checkout.session.completed with payment_status paid grants the pack's credits", async () => {
    const res = await t.deliver(stripeEvent("checkout.session.completed", paidSession("buyer")));
    expect(res).toEqual({ received: true });
    expect(await t.remaining("buyer")).toBe(ALLOWANCE + 10_000);
    const s = internalsOf(t.meter).schema;
    const { rows } = await internalsOf(t.meter).pool.query(`SELECT source, amount, metadata FROM ${s}.grants WHERE user_id = 'buyer'`);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ source: "stripe", amount: "10000" });
    expect(rows[0].metadata.stripe).toMatchObject({ packId: "starter", amountPaid: 500, currency: "usd" });
    expect(rows[0].metadata.stripe.paymentIntent).toMatch(/^pi_/);
    expect(await t.meter.audit("buyer")).toEqual([]);
  });

  test("a granted pack is announced to live streams at once (not left to the next heartbeat)", async () => {
    const listener = await internalsOf(t.meter).pool.connect();
    try {
      const heard: string[] = [];
      listener.on("notification", (n) => heard.push(n.payload ?? ""));
      await listener.query(`LISTEN "${internalsOf(t.meter).channel}"`);
      await t.deliver(stripeEvent("checkout.session.completed", paidSession("announced")));
      const deadline = Date.now() + 2_000;
      while (!heard.includes("announced") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(heard).toContain("announced");
    } finally {
      await listener.query("UNLISTEN *").catch(() => {});
      listener.release();
    }
  });

  test("an unpaid completion (delayed payment method) grants nothing until async_payment_succeeded", async () => {
    const session = paidSession("delayed", { paymentStatus: "unpaid" });
    expect(await t.deliver(stripeEvent("checkout.session.completed", session))).toEqual({ received: true, ignored: true });
    expect(await t.remaining("delayed")).toBe(ALLOWANCE);
    await t.deliver(stripeEvent("checkout.session.async_payment_succeeded", { ...session, payment_status: "paid" }));
    expect(await t.remaining("delayed")).toBe(ALLOWANCE + 10_000);
  });

  test("async_payment_failed grants nothing", async () => {
    const session = paidSession("declined", { paymentStatus: "unpaid" });
    await t.deliver(stripeEvent("checkout.session.completed", session));
    expect(await t.deliver(stripeEvent("checkout.session.async_payment_failed", session))).toEqual({ received: true, ignored: true });
    expect(await t.remaining("declined")).toBe(ALLOWANCE);
  });

  test("out of order: async success before the (unpaid) completion credits once", async () => {
    const session = paidSession("reordered", { paymentStatus: "unpaid" });
    await t.deliver(stripeEvent("checkout.session.async_payment_succeeded", { ...session, payment_status: "paid" }));
    await t.deliver(stripeEvent("checkout.session.completed", session));
    expect(await t.remaining("reordered")).toBe(ALLOWANCE + 10_000);
  });

  test("a paid completion and an async success for the same session credit once", async () => {
    const session = paidSession("both");
    await t.deliver(stripeEvent("checkout.session.completed", session));
    const second = await t.deliver(stripeEvent("checkout.session.async_payment_succeeded", session));
    expect(second).toEqual({ received: true, duplicate: true });
    expect(await t.remaining("both")).toBe(ALLOWANCE + 10_000);
  });

  test("the credits and counter come from the session's metadata, as shown at checkout", async () => {
    await t.deliver(stripeEvent("checkout.session.completed", paidSession("legacy", { credits: 777 })));
    expect(await t.remaining("legacy")).toBe(ALLOWANCE + 777);
  });

  test("a session the host already granted by hand with the session id as idempotency key is not credited again", async () => {
    const session = paidSession("seeded");
    await t.meter.grant("seeded", "tokens", 10_000, { idempotencyKey: session.id });
    expect(await t.deliver(stripeEvent("checkout.session.completed", session))).toEqual({ received: true, duplicate: true });
    expect(await t.remaining("seeded")).toBe(ALLOWANCE + 10_000);
  });
});

describe("exactly once", () => {
  test("the same event delivered twice credits once; the second answer is 2xx with duplicate", async () => {
    const event = stripeEvent("checkout.session.completed", paidSession("twice"));
    expect(await t.deliver(event)).toEqual({ received: true });
    expect(await t.deliver(event)).toEqual({ received: true, duplicate: true });
    expect(await t.remaining("twice")).toBe(ALLOWANCE + 10_000);
  });

  test("ten concurrent deliveries of one event credit once", async () => {
    const event = stripeEvent("checkout.session.completed", paidSession("storm"));
    const results = await Promise.all(Array.from({ length: 10 }, () => t.deliver(event)));
    expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
    expect(results.filter((r) => r.duplicate)).toHaveLength(9);
    expect(await t.remaining("storm")).toBe(ALLOWANCE + 10_000);
    const s = internalsOf(t.meter).schema;
    const { rows } = await internalsOf(t.meter).pool.query(`SELECT count(*)::int AS n FROM ${s}.entries WHERE user_id = 'storm' AND kind = 'grant'`);
    expect(rows[0].n).toBe(1);
  });

  test("ten concurrent deliveries of two different events for one session credit once", async () => {
    const session = paidSession("storm2");
    const a = stripeEvent("checkout.session.completed", session);
    const b = stripeEvent("checkout.session.async_payment_succeeded", session);
    await Promise.all(Array.from({ length: 10 }, (_, i) => t.deliver(i % 2 ? a : b)));
    expect(await t.remaining("storm2")).toBe(ALLOWANCE + 10_000);
  });

  test("a retry after the first attempt failed (nothing written) grants on the retry, once", async () => {
    // No default plan in this meter: an unknown user cannot be credited until they subscribe.
    const strict = await stripeTest({ meter: { defaultPlan: undefined } });
    try {
      const event = stripeEvent("checkout.session.completed", paidSession("newcomer"));
      const err = await strict.deliver(event).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MeterError);
      expect((err as MeterError).status).toBe(500); // Stripe retries 5xx
      await strict.meter.upsertSubscription({ userId: "newcomer", planId: "free" });
      expect(await strict.deliver(event)).toEqual({ received: true });
      expect(await strict.deliver(event)).toEqual({ received: true, duplicate: true });
      expect(await strict.remaining("newcomer")).toBe(ALLOWANCE + 10_000);
    } finally {
      await strict.cleanup();
    }
  });
});

describe("events that are not ours", () => {
  test("a completed session without meterkit metadata is acknowledged and ignored", async () => {
    const before = await rowCounts();
    const res = await t.deliver(stripeEvent("checkout.session.completed", paidSession("other", { metadata: { order: "42" } })));
    expect(res).toEqual({ received: true, ignored: true });
    expect(await rowCounts()).toEqual(before);
  });

  test("a subscription-mode session is ignored", async () => {
    const res = await t.deliver(stripeEvent("checkout.session.completed", { ...paidSession("subscriber"), mode: "subscription" }));
    expect(res).toEqual({ received: true, ignored: true });
    expect(await t.remaining("subscriber")).toBe(ALLOWANCE);
  });

  test("with appId, sessions of another app sharing the Stripe account are ignored and ours granted", async () => {
    const prod = await stripeTest({ stripe: { appId: "prod" } });
    try {
      await internalsOf(prod.meter).billing!.checkout("shared", { packId: "starter" });
      const sent = prod.standIn.requests.filter((r) => r.path === "/v1/checkout/sessions").at(-1)!;
      expect(sent.body.metadata).toMatchObject({ meterkit_app: "prod" });
      const base = paidSession("shared").metadata;
      expect(await prod.deliver(stripeEvent("checkout.session.completed", paidSession("shared", { metadata: { ...base, meterkit_app: "staging" } })))).toEqual({
        received: true,
        ignored: true,
      });
      expect(await prod.deliver(stripeEvent("checkout.session.completed", paidSession("shared", { metadata: base })))).toEqual({ received: true, ignored: true });
      expect(await prod.remaining("shared")).toBe(ALLOWANCE);
      await prod.deliver(stripeEvent("checkout.session.completed", paidSession("shared", { metadata: { ...base, meterkit_app: "prod" } })));
      expect(await prod.remaining("shared")).toBe(ALLOWANCE + 10_000);
    } finally {
      await prod.cleanup();
    }
  });

  test("unhandled event types are acknowledged and ignored", async () => {
    const before = await rowCounts();
    expect(await t.deliver(stripeEvent("customer.created", { id: "cus_1", object: "customer" }))).toEqual({ received: true, ignored: true });
    expect(await t.deliver(stripeEvent("invoice.paid", { id: "in_1", object: "invoice" }))).toEqual({ received: true, ignored: true });
    expect(await rowCounts()).toEqual(before);
  });
});
