import Stripe from "stripe";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createMeter, MeterError, stripeCustomerOf, linkStripeCustomer } from "../../src/server/index.js";
import { TEST_PLANS } from "../helpers/meter.js";
import { APP, PACKS, WEBHOOK_SECRET, stripeTest, type StripeTest } from "./helpers.js";
import { internalsOf } from "../../src/server/internals.js";

let t: StripeTest;
beforeAll(async () => {
  t = await stripeTest({ stripe: { allowedRedirectOrigins: [APP, "https://www.example.com"] } });
});
afterAll(async () => {
  await t?.cleanup();
});

const billing = () => internalsOf(t.meter).billing!;

async function failure(p: Promise<unknown>): Promise<MeterError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MeterError);
  return err as MeterError;
}

const sessionRequests = () => t.standIn.requests.filter((r) => r.path === "/v1/checkout/sessions");

describe("packs", () => {
  test("lists the configured packs with their price, and nothing else", () => {
    expect(billing().packs()).toEqual([
      { id: "starter", label: "Starter pack", counter: "tokens", amount: 10_000, price: { amount: 500, currency: "usd" } },
      { id: "big", label: "Big pack", counter: "tokens", amount: 100_000, price: { amount: 2000, currency: "usd" } },
    ]);
  });

  test("a caller mutating the list does not change the packs on sale", () => {
    const list = billing().packs();
    list[0]!.price.amount = 1;
    expect(billing().packs()[0]!.price.amount).toBe(500);
  });
});

describe("checkout", () => {
  test("creates a payment-mode Checkout Session with the server's price, user and pack in metadata", async () => {
    const { url } = await billing().checkout("alice", { packId: "starter" });
    const req = sessionRequests().at(-1)!;
    expect(url).toBe(`${t.standIn.url}/checkout/${[...t.standIn.sessions.keys()].at(-1)}`);
    expect(req.body).toMatchObject({
      mode: "payment",
      client_reference_id: "alice",
      line_items: [{ price_data: { currency: "usd", unit_amount: "500", product_data: { name: "Starter pack" } }, quantity: "1" }],
      metadata: { meterkit_user_id: "alice", meterkit_pack_id: "starter", meterkit_counter: "tokens", meterkit_credits: "10000" },
      payment_intent_data: { metadata: { meterkit_user_id: "alice", meterkit_pack_id: "starter" } },
      success_url: `${APP}/billing/done?session={CHECKOUT_SESSION_ID}`,
      cancel_url: `${APP}/billing`,
    });
  });

  test("a pack with a Stripe price id charges that Price", async () => {
    await billing().checkout("alice", { packId: "big" });
    expect(sessionRequests().at(-1)!.body.line_items).toEqual([{ price: "price_big", quantity: "1" }]);
  });

  test("the browser cannot set the price, the credits or the user", async () => {
    const input = { packId: "starter", price: 1, amount: 1_000_000, userId: "mallory", metadata: { meterkit_credits: "9" } };
    await billing().checkout("alice", input as Parameters<ReturnType<typeof billing>["checkout"]>[1]);
    const body = sessionRequests().at(-1)!.body;
    expect(body.metadata).toEqual({ meterkit_user_id: "alice", meterkit_pack_id: "starter", meterkit_counter: "tokens", meterkit_credits: "10000" });
    expect(body.line_items).toEqual([{ price_data: { currency: "usd", unit_amount: "500", product_data: { name: "Starter pack" } }, quantity: "1" }]);
  });

  test("the user's Stripe customer is created once and reused", async () => {
    await billing().checkout("bob", { packId: "starter" });
    await billing().checkout("bob", { packId: "big" });
    const created = t.standIn.requests.filter((r) => r.path === "/v1/customers" && (r.body.metadata as Record<string, string>)?.meterkit_user_id === "bob");
    expect(created).toHaveLength(1);
    const customer = await stripeCustomerOf(t.meter, "bob");
    expect(customer).toMatch(/^cus_/);
    expect(sessionRequests().slice(-2).map((r) => r.body.customer)).toEqual([customer, customer]);
  });

  test("concurrent first checkouts of one user end up with one linked customer", async () => {
    await Promise.all(Array.from({ length: 5 }, () => billing().checkout("carol", { packId: "starter" })));
    const customer = await stripeCustomerOf(t.meter, "carol");
    expect(new Set(sessionRequests().slice(-5).map((r) => r.body.customer))).toEqual(new Set([customer]));
  });

  test("a linked customer (linkStripeCustomer) is used instead of creating one", async () => {
    await linkStripeCustomer(t.meter, "dave", "cus_existing_dave");
    await billing().checkout("dave", { packId: "starter" });
    expect(sessionRequests().at(-1)!.body.customer).toBe("cus_existing_dave");
    expect(t.standIn.requests.some((r) => r.path === "/v1/customers" && (r.body.metadata as Record<string, string>)?.meterkit_user_id === "dave")).toBe(false);
  });

  test("an unknown pack is not_found (404) and calls no Stripe API", async () => {
    const n = t.standIn.requests.length;
    const err = await failure(billing().checkout("alice", { packId: "platinum" }));
    expect(err.code).toBe("not_found");
    expect(err.status).toBe(404);
    expect(t.standIn.requests.length).toBe(n);
  });

  test("a missing or malformed packId is invalid_request (400)", async () => {
    expect((await failure(billing().checkout("alice", {}))).code).toBe("invalid_request");
    expect((await failure(billing().checkout("alice", { packId: 7 }))).code).toBe("invalid_request");
  });

  test("success and cancel URLs from the browser are accepted on allowed origins", async () => {
    await billing().checkout("alice", { packId: "starter", successUrl: "https://www.example.com/thanks", cancelUrl: `${APP}/pricing` });
    expect(sessionRequests().at(-1)!.body).toMatchObject({ success_url: "https://www.example.com/thanks", cancel_url: `${APP}/pricing` });
  });

  test.each([
    ["another site", "https://evil.example.net/phish"],
    ["a look-alike host", "https://app.example.com.evil.net/"],
    ["a protocol-relative URL", "//evil.example.net/"],
    ["a javascript: URL", "javascript:alert(1)"],
    ["another port", "https://app.example.com:8443/"],
    ["plain http of an https origin", "http://app.example.com/"],
    ["a non-string", 42],
  ])("a redirect URL on %s is refused (no open redirect)", async (_name, url) => {
    const n = sessionRequests().length;
    const err = await failure(billing().checkout("alice", { packId: "starter", successUrl: url }));
    expect(err.code).toBe("invalid_request");
    expect((await failure(billing().checkout("alice", { packId: "starter", cancelUrl: url }))).code).toBe("invalid_request");
    expect(sessionRequests().length).toBe(n);
  });

  test("Stripe answering 500 is unavailable (503, retry), with Stripe's message kept out of the answer", async () => {
    t.standIn.fail({ path: "/v1/checkout/sessions", status: 500 });
    const err = await failure(billing().checkout("alice", { packId: "starter" }));
    expect(err.code).toBe("unavailable");
    expect(err.message).not.toContain("injected");
  });

  test("Stripe refusing the request (a 400, e.g. an unknown price) is internal (500), not the user's fault", async () => {
    t.standIn.fail({ path: "/v1/checkout/sessions", status: 400 });
    expect((await failure(billing().checkout("alice", { packId: "starter" }))).code).toBe("internal");
  });

  test("Stripe not answering in time is unavailable", async () => {
    const slow = await stripeTest();
    try {
      const client = new Stripe("sk_test_standin", { ...slow.standIn.clientOptions, maxNetworkRetries: 0, timeout: 300 });
      const meter = createMeter({
        database: slow.url,
        plans: TEST_PLANS,
        defaultPlan: "free",
        sweepInterval: 0,
        stripe: { client, webhookSecret: WEBHOOK_SECRET, packs: PACKS, successUrl: `${APP}/ok`, cancelUrl: `${APP}/no` },
      });
      slow.standIn.fail({ path: "/v1/customers", mode: "timeout" });
      const err = await failure(internalsOf(meter).billing!.checkout("erin", { packId: "starter" }));
      expect(err.code).toBe("unavailable");
      await meter.close();
    } finally {
      await slow.cleanup();
    }
  });
});

describe("configuration", () => {
  const stripe = new Stripe("sk_test_x");
  const base = { database: "postgres://localhost/none", plans: TEST_PLANS, sweepInterval: 0 };
  const valid = { client: stripe, webhookSecret: WEBHOOK_SECRET, packs: PACKS, successUrl: `${APP}/ok`, cancelUrl: `${APP}/no` };

  test.each([
    ["no client", { ...valid, client: undefined }, "stripe.client"],
    ["no webhook secret", { ...valid, webhookSecret: "" }, "stripe.webhookSecret"],
    ["a pack on an unknown counter", { ...valid, packs: [{ ...PACKS[0]!, counter: "gold" }] }, "stripe.packs[0].counter"],
    ["a fractional credit amount", { ...valid, packs: [{ ...PACKS[0]!, amount: 1.5 }] }, "stripe.packs[0].amount"],
    ["a bad currency", { ...valid, packs: [{ ...PACKS[0]!, price: { amount: 5, currency: "dollars" } }] }, "stripe.packs[0].price.currency"],
    ["a duplicate pack id", { ...valid, packs: [PACKS[0]!, PACKS[0]!] }, "stripe.packs[1].id"],
    ["packs without a success URL", { ...valid, successUrl: undefined }, "stripe.successUrl"],
    ["a relative cancel URL", { ...valid, cancelUrl: "/billing" }, "stripe.cancelUrl"],
    ["a meter on an unknown counter", { ...valid, meters: { gold: { eventName: "gold" } } }, "stripe.meters.gold"],
    ["an allowed origin with a path", { ...valid, allowedRedirectOrigins: [`${APP}/x`] }, "stripe.allowedRedirectOrigins"],
  ])("createMeter refuses %s, naming the field", (_name, options, field) => {
    let err: unknown;
    try {
      createMeter({ ...base, stripe: options as never });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MeterError);
    expect((err as MeterError).details.field).toBe(field);
  });

  test("without stripe, there are no billing hooks and syncStripeMeters says how to configure it", async () => {
    const meter = createMeter(base);
    expect(internalsOf(meter).billing).toBeUndefined();
    await expect(meter.syncStripeMeters()).rejects.toThrow(/createMeter\(\{ stripe/);
    await meter.close();
  });
});
