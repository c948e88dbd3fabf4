import { randomUUID } from "node:crypto";
import type Stripe from "stripe";
import { MeterError } from "../../core/errors.js";
import { callLedger } from "../ledger/context.js";
import type { MeterInternals } from "../createMeter.js";
import { fingerprint } from "../validate.js";
import { METADATA } from "./checkout.js";
import type { ResolvedStripeConfig } from "./config.js";

/** What the webhook answers (with HTTP 200). */
export interface WebhookResult {
  received: true;
  /** The event (or the session it pays) was already applied; nothing changed. */
  duplicate?: boolean;
  /** Not an event meterkit acts on (another product's payment, an unpaid completion, another type). */
  ignored?: boolean;
}

/**
 * Verifies a delivery against every configured secret (several during a rotation) on the exact
 * bytes received. Throws `invalid_request` for a missing, forged, tampered or stale signature.
 */
export function verifyStripeEvent(stripe: ResolvedStripeConfig, rawBody: Uint8Array, signature: string | null): Stripe.Event {
  if (!(rawBody instanceof Uint8Array)) {
    throw new MeterError("invalid_request", "The Stripe webhook needs the raw request body (mount it before any JSON body parser).");
  }
  if (typeof signature !== "string" || signature.length === 0) {
    throw new MeterError("invalid_request", "Missing Stripe-Signature header.");
  }
  const payload = Buffer.from(rawBody.buffer, rawBody.byteOffset, rawBody.byteLength);
  let last: unknown;
  for (const secret of stripe.secrets) {
    try {
      return stripe.client.webhooks.constructEvent(payload, signature, secret, stripe.tolerance);
    } catch (err) {
      last = err;
    }
  }
  throw new MeterError("invalid_request", "Invalid Stripe webhook signature.", {}, { cause: last });
}

function idOf(value: string | { id: string } | null | undefined): string | null {
  if (typeof value === "string") return value;
  return value && typeof value.id === "string" ? value.id : null;
}

/** The pack a Checkout Session pays for, from the metadata meterkit wrote; null when not ours. */
function packOf(session: Stripe.Checkout.Session, stripe: ResolvedStripeConfig, internals: Pick<MeterInternals, "config">) {
  const md = session.metadata ?? {};
  const userId = md[METADATA.user];
  const packId = md[METADATA.pack];
  if (session.mode !== "payment" || !userId || !packId) return null;
  if (stripe.appId !== null && md[METADATA.app] !== stripe.appId) return null; // another app's payment
  // Sessions from before the credits travelled in metadata fall back to the configured pack.
  const configured = stripe.packs.get(packId);
  const counter = md[METADATA.counter] ?? configured?.counter;
  const creditsText = md[METADATA.credits] ?? (configured ? String(configured.amount) : undefined);
  const credits = creditsText !== undefined && /^[1-9]\d{0,15}$/.test(creditsText) ? Number(creditsText) : NaN;
  if (!counter || !Number.isSafeInteger(credits)) {
    throw new MeterError("internal", `Checkout Session ${session.id} names pack "${packId}" but carries no valid credits or counter.`);
  }
  if (!internals.config.units.has(counter)) {
    // Money arrived for a counter this configuration no longer has: fail, so Stripe retries and
    // the delivery shows as failing in the dashboard, rather than dropping it.
    throw new MeterError("internal", `Checkout Session ${session.id} pays for counter "${counter}", which no plan defines.`);
  }
  return { userId, packId, counter, credits };
}

async function grantSession(
  internals: Pick<MeterInternals, "ledger" | "config">,
  stripe: ResolvedStripeConfig,
  event: Stripe.Event,
  session: Stripe.Checkout.Session,
): Promise<WebhookResult> {
  const pack = packOf(session, stripe, internals);
  if (!pack) return { received: true, ignored: true };
  const paymentIntent = idOf(session.payment_intent);
  const metadata = {
    stripe: {
      sessionId: session.id,
      paymentIntent,
      packId: pack.packId,
      amountPaid: session.amount_total,
      currency: session.currency,
      eventId: event.id,
    },
  };
  const res = await callLedger<{ duplicate?: boolean }>(internals.ledger, "op_stripe_grant", [
    event.id,
    event.type,
    pack.userId,
    pack.counter,
    pack.credits,
    session.id,
    paymentIntent,
    session.amount_total,
    session.currency,
    fingerprint("stripe-grant", session.id, pack.counter, pack.credits),
    "grt_" + randomUUID().replace(/-/g, ""),
    "debt_" + randomUUID().replace(/-/g, ""),
    JSON.stringify(metadata),
  ], pack.userId); // the grant's result names no user: announce the buyer so open balances tick now
  return res.duplicate ? { received: true, duplicate: true } : { received: true };
}

async function clawback(
  internals: Pick<MeterInternals, "ledger">,
  event: Stripe.Event,
  paymentIntent: string | null,
  refunded: number | null,
  disputed: number | null,
): Promise<WebhookResult> {
  if (!paymentIntent) return { received: true, ignored: true };
  const res = await callLedger<{ duplicate?: boolean }>(internals.ledger, "op_clawback", [
    event.id,
    event.type,
    paymentIntent,
    refunded,
    disputed,
    "debt_" + randomUUID().replace(/-/g, ""),
  ]);
  return res.duplicate ? { received: true, duplicate: true } : { received: true };
}

/**
 * Applies one verified event exactly once: its id is recorded in the same transaction as the
 * change it makes, so duplicates, concurrent deliveries and retries after a timeout change
 * nothing more. Events that are not ours or not handled are acknowledged and ignored.
 */
export async function applyStripeEvent(
  internals: Pick<MeterInternals, "ledger" | "config">,
  stripe: ResolvedStripeConfig,
  event: Stripe.Event,
  more: StripeEventHandler[] = [],
): Promise<WebhookResult> {
  // Extensions (auto top-up) act on the events they know; the first answer wins.
  for (const handle of more) {
    const r = await handle(event);
    if (r) return r;
  }
  switch (event.type) {
    case "checkout.session.completed": {
      const session = event.data.object;
      // Delayed methods (bank debits) complete unpaid; async_payment_succeeded grants later.
      if (session.payment_status !== "paid" && session.payment_status !== "no_payment_required") {
        return { received: true, ignored: true };
      }
      return grantSession(internals, stripe, event, session);
    }
    case "checkout.session.async_payment_succeeded":
      return grantSession(internals, stripe, event, event.data.object);
    case "charge.refunded": {
      const charge = event.data.object;
      return clawback(internals, event, idOf(charge.payment_intent), charge.amount_refunded, null);
    }
    case "charge.dispute.created": {
      const dispute = event.data.object;
      return clawback(internals, event, idOf(dispute.payment_intent), null, dispute.amount);
    }
    default:
      return { received: true, ignored: true };
  }
}

/** An extension's handler of verified events: a result when it handled the event, else null. */
export type StripeEventHandler = (event: Stripe.Event) => Promise<WebhookResult | null>;

/** `POST /stripe/webhook`: verify, then apply exactly once. */
export async function handleStripeWebhook(
  internals: Pick<MeterInternals, "ledger" | "config">,
  stripe: ResolvedStripeConfig,
  rawBody: Uint8Array,
  signature: string | null,
  more: StripeEventHandler[] = [],
): Promise<WebhookResult> {
  const event = verifyStripeEvent(stripe, rawBody, signature);
  try {
    return await applyStripeEvent(internals, stripe, event, more);
  } catch (err) {
    if (err instanceof MeterError && (err.code === "unavailable" || err.code === "internal")) throw err;
    // Anything else (an unknown user, a counter missing from the user's plan) is not the
    // sender's fault: answer 500 so Stripe retries and the failure shows in its dashboard.
    const message = err instanceof Error ? err.message : String(err);
    throw new MeterError("internal", `Stripe event ${event.id} (${event.type}) could not be applied: ${message}`, {}, { cause: err });
  }
}
