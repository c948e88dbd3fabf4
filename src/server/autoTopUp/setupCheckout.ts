import { assertId } from "../../core/amounts.js";
import { MeterError } from "../../core/errors.js";
import type { MeterInternals } from "../createMeter.js";
import { redirectUrl } from "../stripe/checkout.js";
import type { ResolvedStripeConfig } from "../stripe/config.js";
import { ensureStripeCustomer } from "../stripe/customers.js";
import { fromStripeError } from "../stripe/stripeError.js";

/**
 * A Checkout Session in `setup` mode: the user saves a card for off-session charges (3-D
 * Secure, if the bank asks, happens here, on-session). The `setup_intent.succeeded` webhook
 * stores it; auto top-ups paused for a card problem resume.
 */
export async function setupCheckout(
  internals: Pick<MeterInternals, "pool" | "schema" | "schemaName">,
  stripe: ResolvedStripeConfig,
  userId: string,
  input: { successUrl?: unknown; cancelUrl?: unknown },
): Promise<{ url: string }> {
  const user = assertId(userId, "userId");
  const i = input && typeof input === "object" ? input : {};
  const successUrl = redirectUrl(i.successUrl, "successUrl", stripe.successUrl, stripe.allowedOrigins);
  const cancelUrl = redirectUrl(i.cancelUrl, "cancelUrl", stripe.cancelUrl, stripe.allowedOrigins);
  const customer = await ensureStripeCustomer(internals, stripe, user);
  const metadata = { meterkit_user_id: user, meterkit_purpose: "auto_top_up", ...(stripe.appId ? { meterkit_app: stripe.appId } : {}) };
  const currency = [...stripe.packs.values()][0]?.price.currency ?? "usd";
  try {
    const session = await stripe.client.checkout.sessions.create({
      mode: "setup",
      currency,
      customer,
      client_reference_id: user,
      metadata,
      setup_intent_data: { metadata },
      success_url: successUrl,
      cancel_url: cancelUrl,
    });
    if (!session.url) throw new MeterError("internal", "Stripe returned a Checkout Session without a URL.");
    return { url: session.url };
  } catch (err) {
    throw fromStripeError(err, "create a setup Checkout Session");
  }
}
