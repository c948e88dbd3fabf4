import Stripe from "stripe";
import type { StripeOptions } from "../src/server/index.js";
import { startStripeStandIn, type StripeStandIn } from "../src/testing/index.js";
import { DEMO_PACKS } from "./config.js";

export interface DemoPayments {
  /** The `stripe` option of `createMeter`. */
  stripe: StripeOptions;
  mode: "stand-in" | "stripe";
  /** The local stand-in, when no Stripe keys are set; its `webhookUrl` is set once the app listens. */
  standIn: StripeStandIn | null;
  close(): Promise<void>;
}

/**
 * Real Stripe test mode when `STRIPE_SECRET_KEY` and `STRIPE_WEBHOOK_SECRET` are set (forward
 * the webhook with `stripe listen --forward-to <url>/api/meter/stripe/webhook`); otherwise
 * meterkit's local stand-in, which serves a checkout page and sends signed webhooks, so the
 * same verification and granting code runs with no network.
 */
export async function demoPayments(appUrl: string, env: NodeJS.ProcessEnv = process.env): Promise<DemoPayments> {
  const urls = {
    packs: DEMO_PACKS,
    // Checkout opens in a new tab (see the page), which lands here: the page says it can be closed.
    successUrl: `${appUrl}/?checkout=success`,
    cancelUrl: `${appUrl}/?checkout=cancelled`,
  };
  const key = env.STRIPE_SECRET_KEY;
  const secret = env.STRIPE_WEBHOOK_SECRET;
  if (key || secret) {
    if (!key || !secret) throw new Error("Set both STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET for Stripe test mode, or neither for the local stand-in.");
    if (!key.startsWith("sk_test_") && !key.startsWith("rk_test_")) throw new Error("The demo only runs against Stripe test mode: use an sk_test_… key.");
    return { stripe: { client: new Stripe(key), webhookSecret: secret, ...urls }, mode: "stripe", standIn: null, close: async () => {} };
  }
  const standIn = await startStripeStandIn({ webhookUrl: `${appUrl}/api/meter/stripe/webhook` });
  return {
    stripe: { client: new Stripe("sk_test_standin", standIn.clientOptions), webhookSecret: standIn.webhookSecret, ...urls },
    mode: "stand-in",
    standIn,
    close: () => standIn.close(),
  };
}
