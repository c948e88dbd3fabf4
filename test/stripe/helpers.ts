import Stripe from "stripe";
import type { CreateMeterOptions, Meter, StripeOptions } from "../../src/server/index.js";
import { startStripeStandIn, type StripeStandIn } from "../../src/testing/index.js";
import { testMeter } from "../helpers/meter.js";

export const WEBHOOK_SECRET = "whsec_test_meterkit_0123456789";
export const APP = "https://app.example.com";

export const PACKS: NonNullable<StripeOptions["packs"]> = [
  { id: "starter", label: "Starter pack", counter: "tokens", amount: 10_000, price: { amount: 500, currency: "usd" } },
  { id: "big", label: "Big pack", counter: "tokens", amount: 100_000, price: { amount: 2000, currency: "usd" }, priceId: "price_big" },
];

export interface StripeTest {
  meter: Meter;
  url: string;
  standIn: StripeStandIn;
  stripe: Stripe;
  /** Calls the billing webhook as the HTTP handler does: raw bytes and the signature header. */
  webhook(payload: string, signature: string | null): ReturnType<NonNullable<Meter["internals"]["billing"]>["webhook"]>;
  /** A signed delivery of `event` (as Stripe would send it), straight to the billing webhook. */
  deliver(event: object, options?: { timestamp?: number; secret?: string }): ReturnType<StripeTest["webhook"]>;
  /** The credits a user has left on a counter. */
  remaining(userId: string, counter?: string): Promise<number | null>;
  cleanup(): Promise<void>;
}

/** A migrated meter with Stripe configured, its client pointed at a fresh stand-in. */
export async function stripeTest(
  options: { stripe?: Partial<StripeOptions>; meter?: Partial<CreateMeterOptions>; maxNetworkRetries?: number } = {},
): Promise<StripeTest> {
  const standIn = await startStripeStandIn({ webhookSecret: WEBHOOK_SECRET, prices: { price_big: { unitAmount: 2000, currency: "usd" } } });
  const stripe = new Stripe("sk_test_standin", { ...standIn.clientOptions, maxNetworkRetries: options.maxNetworkRetries ?? 0 });
  const t = await testMeter({
    defaultPlan: "free",
    ...options.meter,
    stripe: {
      client: stripe,
      webhookSecret: WEBHOOK_SECRET,
      packs: PACKS,
      successUrl: `${APP}/billing/done?session={CHECKOUT_SESSION_ID}`,
      cancelUrl: `${APP}/billing`,
      ...options.stripe,
    },
  });
  const billing = t.meter.internals.billing!;
  const webhook: StripeTest["webhook"] = (payload, signature) => billing.webhook(Buffer.from(payload), signature);
  return {
    meter: t.meter,
    url: t.url,
    standIn,
    stripe,
    webhook,
    deliver(event, o = {}) {
      const payload = JSON.stringify(event);
      const header = stripe.webhooks.generateTestHeaderString({ payload, secret: o.secret ?? WEBHOOK_SECRET, ...(o.timestamp ? { timestamp: o.timestamp } : {}) });
      return webhook(payload, header);
    },
    async remaining(userId, counter = "tokens") {
      const u = await t.meter.usage(userId);
      return u.counters.find((c) => c.key === counter)!.remaining;
    },
    async cleanup() {
      standIn.clearFailures();
      await standIn.close();
      await t.cleanup();
    },
  };
}

let seq = 0;

/** A Stripe event envelope around `object`. */
export function stripeEvent(type: string, object: Record<string, unknown>, id = `evt_test_${Date.now()}_${++seq}`) {
  return {
    id,
    object: "event",
    type,
    api_version: "2026-10-28.endive",
    created: Math.floor(Date.now() / 1000),
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    data: { object },
  };
}

/** A Checkout Session for `pack` bought by `userId`, as meterkit creates it and Stripe reports it. */
export function paidSession(
  userId: string,
  o: { id?: string; paymentIntent?: string; paymentStatus?: string; pack?: string; credits?: number; amount?: number; metadata?: Record<string, string> } = {},
) {
  const n = ++seq;
  return {
    id: o.id ?? `cs_test_${n}`,
    object: "checkout.session",
    mode: "payment",
    status: "complete",
    payment_status: o.paymentStatus ?? "paid",
    amount_total: o.amount ?? 500,
    currency: "usd",
    customer: "cus_test_1",
    client_reference_id: userId,
    payment_intent: o.paymentIntent ?? `pi_test_${n}`,
    metadata: o.metadata ?? {
      meterkit_user_id: userId,
      meterkit_pack_id: o.pack ?? "starter",
      meterkit_counter: "tokens",
      meterkit_credits: String(o.credits ?? 10_000),
    },
  };
}

/** A charge of `paymentIntent` with `refunded` of `amount` given back. */
export function refundedCharge(paymentIntent: string, refunded: number, amount = 500) {
  return {
    id: `ch_${paymentIntent}`,
    object: "charge",
    amount,
    amount_refunded: refunded,
    currency: "usd",
    refunded: refunded >= amount,
    payment_intent: paymentIntent,
  };
}
