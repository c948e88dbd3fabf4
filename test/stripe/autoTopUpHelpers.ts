import Stripe from "stripe";
import { createMeter, type CreateMeterOptions, type Meter } from "../../src/server/index.js";
import type { StripeStandIn } from "../../src/testing/index.js";
import { TEST_PLANS } from "../helpers/meter.js";
import { APP, PACKS, WEBHOOK_SECRET, stripeTest, type StripeTest } from "./helpers.js";

export const PLANS: CreateMeterOptions["plans"] = {
  ...TEST_PLANS,
  weekly: { limits: { tokens: { quota: 1000, period: "week" } } },
  endless: { limits: { tokens: { quota: null, period: "month" } } },
};

export interface TopUpTest extends StripeTest {
  /** Delivers to the meter every event the stand-in sent since the last relay (it has no webhookUrl). */
  relay(): Promise<void>;
  /** Saves a card for `userId` through Checkout setup mode and the webhook. */
  saveCard(userId: string): Promise<void>;
  /** Another meter on the same database and stand-in: another process of the same app. */
  another(overrides?: Partial<CreateMeterOptions>): Meter;
  /** Off-session PaymentIntent creations the stand-in received. */
  charges(): Array<{ idempotencyKey: string; body: Record<string, unknown> }>;
}

/** A meter with Stripe and auto top-up (worker timer off: tests call `run()`), on a fresh stand-in. */
export async function topUpTest(overrides: Partial<CreateMeterOptions> = {}): Promise<TopUpTest> {
  const t = await stripeTest({ meter: { plans: PLANS, autoTopUp: { interval: 0 }, ...overrides } });
  const others: Meter[] = [];
  let relayed = 0;
  const relay = async () => {
    await new Promise((r) => setTimeout(r, 10)); // the stand-in sends some events just after answering
    while (relayed < t.standIn.deliveries.length) {
      const d = t.standIn.deliveries[relayed++]!;
      await t.deliver(d.event);
    }
  };
  return {
    ...t,
    relay,
    async saveCard(userId) {
      const { url } = await t.meter.autoTopUp.setupCheckout(userId);
      await t.standIn.pay(url.split("/").pop()!);
      await relay();
    },
    another(o = {}) {
      const stripe = new Stripe("sk_test_standin", { ...t.standIn.clientOptions, maxNetworkRetries: 0 });
      const m = createMeter({
        database: t.url,
        plans: PLANS,
        meters: { "llm.tokens": { counter: "tokens" } },
        defaultPlan: "free",
        sweepInterval: 0,
        autoTopUp: { interval: 0 },
        stripe: { client: stripe, webhookSecret: WEBHOOK_SECRET, packs: PACKS, successUrl: `${APP}/done`, cancelUrl: `${APP}/billing` },
        ...o,
      });
      others.push(m);
      return m;
    },
    charges: () =>
      t.standIn.requests
        .filter((r) => r.path === "/v1/payment_intents" && r.method === "POST")
        .map((r) => ({ idempotencyKey: String(r.headers["idempotency-key"]), body: r.body })),
    async cleanup() {
      for (const m of others) await m.close().catch(() => {});
      await t.cleanup();
    },
  };
}

export type { StripeStandIn };
