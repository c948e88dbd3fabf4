import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { meterRouter } from "../../src/express/index.js";
import { APP, stripeTest, type StripeTest } from "./helpers.js";

/*
 * The whole path with nothing stubbed: a real Express app with meterRouter, the real stripe-node
 * client, the stand-in's hosted page and its signed webhook, real Postgres.
 */

let t: StripeTest;
let app: express.Express;
let server: Server;
beforeAll(async () => {
  t = await stripeTest();
  app = express();
  app.use("/api/meter", meterRouter(t.meter, { identify: (req) => req.header("x-user") ?? null, onError: () => {} }));
  // The host's own JSON routes, after the router: they must not break the webhook's raw body.
  app.use(express.json());
  server = app.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  t.standIn.webhookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/meter/stripe/webhook`;
});
afterAll(async () => {
  await new Promise((r) => server?.close(r));
  await t?.cleanup();
});

const ALLOWANCE = 1000;

async function remaining(user: string) {
  const res = await request(app).get("/api/meter/usage").set("x-user", user).expect(200);
  return (res.body as { counters: Array<{ key: string; remaining: number }> }).counters.find((c) => c.key === "tokens")!.remaining;
}

async function checkout(user: string, packId = "starter") {
  const res = await request(app).post("/api/meter/checkout").set("x-user", user).send({ packId }).expect(200);
  return res.body.url as string;
}

async function until(check: () => boolean | Promise<boolean>, ms = 5000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("buying a pack through the stand-in", () => {
  test("GET /packs lists the packs", async () => {
    const res = await request(app).get("/api/meter/packs").set("x-user", "ann").expect(200);
    expect(res.body.packs.map((p: { id: string }) => p.id)).toEqual(["starter", "big"]);
  });

  test("the hosted checkout page shows the pack and price, Pay and Cancel, and says it is development only", async () => {
    const url = await checkout("ann");
    const res = await fetch(url);
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain("Development only");
    expect(html).toContain("not Stripe");
    expect(html).toContain("Starter pack");
    expect(html).toContain("$5.00");
    expect(html).toMatch(/<button[^>]*>Pay<\/button>/);
    expect(html).toMatch(/<button[^>]*>Cancel<\/button>/);
  });

  test("Pay sends a signed checkout.session.completed to the app, which grants the pack, then returns to the success URL", async () => {
    const before = await remaining("ann");
    const url = await checkout("ann");
    const id = url.split("/").at(-1)!;
    const res = await fetch(`${url}/pay`, { method: "POST", redirect: "manual" });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(`${APP}/billing/done?session=${id}`);
    expect(t.standIn.deliveries.at(-1)).toMatchObject({ status: 200, event: { type: "checkout.session.completed" } });
    expect(await remaining("ann")).toBe(before + 10_000);
  });

  test("Cancel returns to the cancel URL and grants nothing", async () => {
    const before = await remaining("ben");
    const url = await checkout("ben");
    const res = await fetch(`${url}/cancel`, { method: "POST", redirect: "manual" });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(`${APP}/billing`);
    expect(await remaining("ben")).toBe(before);
  });

  test("a redelivered event is answered 200 with duplicate and credits nothing more", async () => {
    const url = await checkout("cat");
    const delivery = await t.standIn.pay(url.split("/").at(-1)!);
    expect(delivery.status).toBe(200);
    const again = await t.standIn.deliver(delivery.event);
    expect(again.status).toBe(200);
    expect(JSON.parse(again.body)).toEqual({ received: true, duplicate: true });
    expect(await remaining("cat")).toBe(ALLOWANCE + 10_000);
  });

  test("a delayed payment grants when it succeeds", async () => {
    const url = await checkout("dan");
    const id = url.split("/").at(-1)!;
    await t.standIn.pay(id, { async: true });
    expect(await remaining("dan")).toBe(ALLOWANCE);
    expect((await t.standIn.settle(id)).status).toBe(200);
    expect(await remaining("dan")).toBe(ALLOWANCE + 10_000);
  });

  test("a refund made with stripe.refunds.create takes the credits back through charge.refunded", async () => {
    const url = await checkout("eve", "big");
    const id = url.split("/").at(-1)!;
    await t.standIn.pay(id);
    expect(await remaining("eve")).toBe(ALLOWANCE + 100_000);
    const n = t.standIn.deliveries.length;
    await t.stripe.refunds.create({ payment_intent: t.standIn.sessions.get(id)!.payment_intent! });
    await until(() => t.standIn.deliveries.length > n);
    expect(t.standIn.deliveries.at(-1)).toMatchObject({ status: 200, event: { type: "charge.refunded" } });
    expect(await remaining("eve")).toBe(ALLOWANCE);
  });
});

describe("the webhook route", () => {
  test("a forged delivery is answered 400 invalid_request and credits nothing", async () => {
    const payload = JSON.stringify({ id: "evt_forged", type: "checkout.session.completed", data: { object: {} } });
    const res = await request(app)
      .post("/api/meter/stripe/webhook")
      .set("content-type", "application/json")
      .set("stripe-signature", t.standIn.sign(payload, { secret: "whsec_wrong" }))
      .send(payload)
      .expect(400);
    expect(res.body.error.code).toBe("invalid_request");
  });

  test("a stale delivery is answered 400", async () => {
    const url = await checkout("fay");
    const id = url.split("/").at(-1)!;
    const old = Math.floor(Date.now() / 1000) - 600;
    t.standIn.webhookUrl = undefined; // pay without delivering, then deliver late
    const { event } = await t.standIn.pay(id);
    t.standIn.webhookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/meter/stripe/webhook`;
    expect((await t.standIn.deliver(event, { timestamp: old })).status).toBe(400);
    expect(await remaining("fay")).toBe(ALLOWANCE);
    expect((await t.standIn.deliver(event)).status).toBe(200);
    expect(await remaining("fay")).toBe(ALLOWANCE + 10_000);
  });

  test("POST /checkout of an unknown pack is 404 not_found", async () => {
    const res = await request(app).post("/api/meter/checkout").set("x-user", "ann").send({ packId: "nope" }).expect(404);
    expect(res.body.error.code).toBe("not_found");
  });

  test("POST /checkout with a foreign success URL is 400 (no open redirect)", async () => {
    const res = await request(app)
      .post("/api/meter/checkout")
      .set("x-user", "ann")
      .send({ packId: "starter", successUrl: "https://evil.example.net/" })
      .expect(400);
    expect(res.body.error.code).toBe("invalid_request");
  });

  test("when the app's webhook fails, the stand-in's page says so instead of pretending it worked", async () => {
    const url = await checkout("gus");
    t.standIn.webhookUrl = "http://127.0.0.1:9/unreachable";
    try {
      const res = await fetch(`${url}/pay`, { method: "POST", redirect: "manual" });
      expect(res.status).toBe(502);
      expect(await res.text()).toContain("webhook failed");
    } finally {
      t.standIn.webhookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/meter/stripe/webhook`;
    }
  });
});
