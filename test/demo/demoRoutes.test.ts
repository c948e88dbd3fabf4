import request from "supertest";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { demoPlans } from "../../demo/config.js";
import { DEMO_USER } from "../../demo/constants.js";
import { createDemoApp } from "../../demo/createDemoApp.js";
import { testMeter, type TestMeter } from "../helpers/meter.js";

/*
 * The demo's own routes read the ledger through the public API only (meter.reservation,
 * meter.eraseUser): what a Stop shows and what Reset does.
 */
let t: TestMeter;
let app: ReturnType<typeof createDemoApp>;

beforeAll(async () => {
  t = await testMeter({ plans: demoPlans(1_000), meters: { "llm.tokens": { counter: "tokens" } }, defaultPlan: "demo" });
  await t.meter.upsertSubscription({ userId: DEMO_USER, planId: "demo" });
  app = createDemoApp({ meter: t.meter, planId: "demo", wordMs: 1, webRoot: "/nonexistent", payments: "stand-in" });
});
afterAll(async () => {
  await t.cleanup();
});

describe("GET /api/holds/:id", () => {
  test("shows how the user's hold ended: held, charged, refunded, the prompt's tokens", async () => {
    const r = await t.meter.reserve(DEMO_USER, "llm.tokens", 300, { metadata: { inputTokens: 120 } });
    if (!r.allowed) throw new Error("denied");
    await t.meter.commit(r.reservationId, { actual: 170 });
    const res = await request(app).get(`/api/holds/${r.reservationId}`).expect(200);
    expect(res.body).toEqual({ status: "committed", held: 300, charged: 170, refunded: 130, inputTokens: 120 });
  });

  test("another user's hold is not found", async () => {
    await t.meter.upsertSubscription({ userId: "someone-else", planId: "demo" });
    const r = await t.meter.reserve("someone-else", "llm.tokens", 10);
    if (!r.allowed) throw new Error("denied");
    const res = await request(app).get(`/api/holds/${r.reservationId}`).expect(404);
    expect(res.body.error.code).toBe("not_found");
  });
});

describe("POST /api/reset", () => {
  test("puts the demo user back to the start and leaves other users alone", async () => {
    await t.meter.grant(DEMO_USER, "tokens", 5_000, { idempotencyKey: "cs_demo" });
    await t.meter.track(DEMO_USER, "llm.tokens", 400);
    const other = await t.meter.usage("someone-else");
    await request(app).post("/api/reset").expect(204);
    expect((await t.meter.usage(DEMO_USER)).counters[0]).toMatchObject({ label: "Tokens", used: 0, held: 0, granted: 0, remaining: 1_000 });
    expect(await t.meter.entries(DEMO_USER)).toEqual([]);
    expect(await t.meter.usage("someone-else")).toEqual(other);
    expect(await t.meter.audit()).toEqual([]);
  });
});
