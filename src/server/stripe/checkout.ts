import { assertId, describe } from "../../core/amounts.js";
import { MeterError } from "../../core/errors.js";
import type { MeterInternals } from "../createMeter.js";
import type { ResolvedPack, ResolvedStripeConfig } from "./config.js";
import { ensureStripeCustomer } from "./customers.js";
import { fromStripeError } from "./stripeError.js";

/** Metadata keys meterkit writes on Checkout Sessions and reads back from the webhook. */
export const METADATA = {
  user: "meterkit_user_id",
  pack: "meterkit_pack_id",
  counter: "meterkit_counter",
  credits: "meterkit_credits",
  app: "meterkit_app",
} as const;

export interface CheckoutInput {
  packId?: unknown;
  successUrl?: unknown;
  cancelUrl?: unknown;
  /** `true`: also save the card for automatic top-ups (`setup_future_usage: "off_session"`). Default false. */
  saveCard?: unknown;
}

/** Stripe replaces this in redirect URLs; URL parsing percent-encodes its braces in a path. */
const SESSION_PLACEHOLDER = "{CHECKOUT_SESSION_ID}";

/**
 * A browser-supplied redirect URL: accepted only on a configured origin, so that checkout can
 * never send a user to someone else's site. Absent → the configured URL. What goes to Stripe
 * is the parsed URL that was checked, never the raw string: `https:app.example.com`,
 * `https://app.example.com\@evil.example` and the like parse to one thing here and might to
 * another further down. Control characters (CR, LF, tab, NUL…) are refused outright.
 */
export function redirectUrl(value: unknown, name: string, fallback: string | null, origins: Set<string>): string {
  if (value === undefined || value === null) {
    if (!fallback) throw new MeterError("internal", `createMeter({ stripe }) has no ${name}.`);
    return fallback;
  }
  if (typeof value !== "string" || value.length > 2048) {
    throw new MeterError("invalid_request", `${name} must be a URL string, got ${describe(value)}.`, { field: name });
  }
  if (/[\u0000-\u001f\u007f]/.test(value)) {
    throw new MeterError("invalid_request", `${name} must not contain control characters.`, { field: name });
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new MeterError("invalid_request", `${name} must be an absolute URL.`, { field: name });
  }
  if ((url.protocol !== "https:" && url.protocol !== "http:") || !origins.has(url.origin)) {
    throw new MeterError("invalid_request", `${name} must be on an allowed origin (stripe.allowedRedirectOrigins).`, { field: name });
  }
  return url.href.replaceAll(encodeURI(SESSION_PLACEHOLDER), SESSION_PLACEHOLDER);
}

export function findPack(stripe: ResolvedStripeConfig, packId: unknown): ResolvedPack {
  if (typeof packId !== "string" || packId.length === 0) {
    throw new MeterError("invalid_request", `packId must be a pack id string, got ${describe(packId)}.`, { field: "packId" });
  }
  const pack = stripe.packs.get(packId);
  if (!pack) throw new MeterError("not_found", `Unknown pack "${packId.slice(0, 100)}".`, { packId: packId.slice(0, 100) });
  return pack;
}

/**
 * Creates a Checkout Session (mode `payment`) for one pack. The price comes from the server's
 * configuration; the browser chooses only the pack (and, on allowed origins, where to return).
 */
export async function createCheckout(
  internals: Pick<MeterInternals, "pool" | "schema" | "schemaName">,
  stripe: ResolvedStripeConfig,
  userId: string,
  input: CheckoutInput,
): Promise<{ url: string }> {
  const user = assertId(userId, "userId");
  const i: CheckoutInput = input && typeof input === "object" ? input : {};
  const pack = findPack(stripe, i.packId);
  const successUrl = redirectUrl(i.successUrl, "successUrl", stripe.successUrl, stripe.allowedOrigins);
  const cancelUrl = redirectUrl(i.cancelUrl, "cancelUrl", stripe.cancelUrl, stripe.allowedOrigins);
  if (i.saveCard !== undefined && i.saveCard !== null && typeof i.saveCard !== "boolean") {
    throw new MeterError("invalid_request", `saveCard must be true or false, got ${describe(i.saveCard)}.`, { field: "saveCard" });
  }
  const customer = await ensureStripeCustomer(internals, stripe, user);
  // The credits and counter travel with the payment: a pack reconfigured between checkout and
  // payment still grants what the user saw.
  const metadata = {
    [METADATA.user]: user,
    [METADATA.pack]: pack.id,
    [METADATA.counter]: pack.counter,
    [METADATA.credits]: String(pack.amount),
    ...(stripe.appId ? { [METADATA.app]: stripe.appId } : {}),
  };
  try {
    const session = await stripe.client.checkout.sessions.create({
      mode: "payment",
      customer,
      client_reference_id: user,
      line_items: [
        pack.priceId
          ? { price: pack.priceId, quantity: 1 }
          : {
              price_data: { currency: pack.price.currency, unit_amount: pack.price.amount, product_data: { name: pack.label } },
              quantity: 1,
            },
      ],
      metadata,
      payment_intent_data: { metadata, ...(i.saveCard === true ? { setup_future_usage: "off_session" as const } : {}) },
      success_url: successUrl,
      cancel_url: cancelUrl,
    });
    if (!session.url) throw new MeterError("internal", "Stripe returned a Checkout Session without a URL.");
    return { url: session.url };
  } catch (err) {
    throw fromStripeError(err, "create a Checkout Session");
  }
}
