import { internalsOf } from "../../src/server/internals.js";
import { afterEach, expect, test } from "vitest";
import { linkStripeCustomer, type CreateMeterOptions } from "../../src/server/index.js";
import { stripeTest, type StripeTest } from "./helpers.js";

const DAY = 86_400_000;
const PLANS: CreateMeterOptions["plans"] = {
  metered: { postpaid: true, limits: { tokens: { quota: 0, period: "month" } } },
  monthly: { limits: { tokens: { quota: 1000, period: "month" } } },
};

let t: StripeTest;
afterEach(async () => {
  await t?.cleanup();
});

async function setUp() {
  t = await stripeTest({
    meter: { plans: PLANS, meters: {}, defaultPlan: "monthly" },
    stripe: { packs: [], meters: { tokens: { eventName: "llm_tokens" } }, meterSettleMs: 0 },
  });
  const s = internalsOf(t.meter).schema;
  const end = new Date(Math.floor((Date.now() - 2 * DAY) / 1000) * 1000);
  const start = new Date(end.getTime() - DAY);
  for (const [user, plan] of [["post", "metered"], ["pre", "monthly"], ["pre_default", null]] as const) {
    if (plan) await t.meter.upsertSubscription({ userId: user, planId: plan });
    await internalsOf(t.meter).pool.query(
      `INSERT INTO ${s}.balances (user_id, counter_key, period_start, period_end, used) VALUES ($1, 'tokens', $2, $3, 42)`,
      [user, start, end],
    );
    await linkStripeCustomer(t.meter, user, `cus_${user}`);
  }
}

async function outbox() {
  const { rows } = await internalsOf(t.meter).pool.query<{ user_id: string; status: string }>(
    `SELECT user_id, status FROM ${internalsOf(t.meter).schema}.stripe_meter_outbox ORDER BY user_id`,
  );
  return rows;
}

test("only users of post-paid plans are queued and pushed; pre-paid users sharing the counter never are", async () => {
  await setUp();
  const report = await t.meter.syncStripeMeters();
  expect(report.sent.map((s) => s.userId)).toEqual(["post"]);
  expect(report.queued).toBe(1);
  expect(await outbox()).toEqual([{ user_id: "post", status: "sent" }]);
  expect(t.standIn.meterEvents.map((e) => e.payload.stripe_customer_id)).toEqual(["cus_post"]);
});

test("rows queued for pre-paid users before the upgrade are marked skipped, never sent; post-paid rows still go", async () => {
  await setUp();
  // What 0002's enqueue did: every user with usage on the mapped counter.
  await internalsOf(t.meter).pool.query(`SELECT ${internalsOf(t.meter).schema}.stripe_enqueue_meter_periods('{"tokens":"llm_tokens"}', 0)`);
  expect((await outbox()).map((r) => r.status)).toEqual(["pending", "pending", "pending"]);
  const report = await t.meter.syncStripeMeters();
  expect(report.sent.map((s) => s.userId)).toEqual(["post"]);
  expect(report.failed).toEqual([]);
  expect(await outbox()).toEqual([
    { user_id: "post", status: "sent" },
    { user_id: "pre", status: "skipped" },
    { user_id: "pre_default", status: "skipped" },
  ]);
  expect(report.pending).toBe(0);
  expect(t.standIn.meterEvents).toHaveLength(1);
});

test("a Stripe meter on a counter that no post-paid plan has is refused at createMeter, saying what to fix", async () => {
  await expect(
    stripeTest({
      meter: { plans: { monthly: PLANS.monthly! }, meters: {}, defaultPlan: "monthly" },
      stripe: { packs: [], meters: { tokens: { eventName: "llm_tokens" } } },
    }),
  ).rejects.toMatchObject({ code: "invalid_request", message: expect.stringMatching(/postpaid: true/) });
});
