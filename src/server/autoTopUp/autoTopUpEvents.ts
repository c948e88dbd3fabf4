import type Stripe from "stripe";
import { run } from "../outbox/outbox.js";
import type { ResolvedStripeConfig } from "../stripe/config.js";
import type { WebhookResult } from "../stripe/webhook.js";
import { AUTO_TOP_UP_METADATA, type AutoTopUpEngine } from "./createAutoTopUp.js";
import { creditTopUp, type TopUpInternals } from "./creditTopUp.js";

function idOf(value: string | { id: string } | null | undefined): string | null {
  if (typeof value === "string") return value;
  return value && typeof value.id === "string" ? value.id : null;
}

/**
 * The Stripe events of auto top-up, for the webhook: `payment_intent.succeeded` of an auto
 * top-up credits it (exactly once with the worker, by PaymentIntent id); its
 * `payment_intent.payment_failed` pauses; `setup_intent.succeeded` (Checkout setup mode) and
 * `payment_intent.succeeded` of a pack bought with `setup_future_usage: "off_session"` save the
 * card. Answers null for events that are not ours.
 */
export function autoTopUpEvents(internals: TopUpInternals, stripe: ResolvedStripeConfig, engine: AutoTopUpEngine, kickAlerts: () => void) {
  const ours = (md: Stripe.Metadata | null | undefined) =>
    !!md?.meterkit_user_id && (stripe.appId === null || md.meterkit_app === stripe.appId);

  return async (event: Stripe.Event): Promise<WebhookResult | null> => {
    switch (event.type) {
      case "payment_intent.succeeded": {
        const pi = event.data.object;
        const md = pi.metadata;
        if (!ours(md)) return null;
        const chargeId = md[AUTO_TOP_UP_METADATA];
        if (chargeId) {
          const credits = Number(md.meterkit_credits);
          if (!md.meterkit_counter || !Number.isSafeInteger(credits) || credits <= 0) return null;
          const res = await creditTopUp(internals, {
            eventId: event.id,
            eventType: event.type,
            chargeId,
            userId: md.meterkit_user_id!,
            counter: md.meterkit_counter,
            credits,
            packId: md.meterkit_pack_id ?? "",
            paymentIntent: pi.id,
            amount: pi.amount_received || pi.amount,
            currency: pi.currency,
          });
          kickAlerts();
          return res.duplicate ? { received: true, duplicate: true } : { received: true };
        }
        const pm = idOf(pi.payment_method);
        const customer = idOf(pi.customer);
        if (pi.setup_future_usage === "off_session" && pm && customer) {
          await engine.savePaymentMethod(md.meterkit_user_id!, customer, pm, event.created);
          // The pack itself is credited by checkout.session.completed.
          return { received: true };
        }
        return null;
      }
      case "payment_intent.payment_failed": {
        const pi = event.data.object;
        const chargeId = ours(pi.metadata) ? pi.metadata[AUTO_TOP_UP_METADATA] : undefined;
        if (!chargeId) return null;
        const err = pi.last_payment_error;
        const reason = err?.code === "authentication_required" ? "requires_action" : err?.type === "card_error" ? "card_declined" : "payment_failed";
        await run(internals.pool, `SELECT ${internals.schema}.auto_top_up_fail($1, $2, $3, $4, $5)`, [
          chargeId,
          reason,
          err?.message ?? "The payment failed.",
          pi.id,
          internals.alerts(),
        ]);
        kickAlerts();
        return { received: true };
      }
      case "setup_intent.succeeded": {
        const si = event.data.object;
        const pm = idOf(si.payment_method);
        const customer = idOf(si.customer);
        if (!ours(si.metadata) || !pm || !customer) return null;
        await engine.savePaymentMethod(si.metadata!.meterkit_user_id!, customer, pm, event.created);
        return { received: true };
      }
      default:
        return null;
    }
  };
}
