import { randomUUID } from "node:crypto";
import { callLedger } from "../ledger/context.js";
import type { MeterInternals } from "../createMeter.js";
import { run } from "../outbox/outbox.js";
import { fingerprint } from "../validate.js";

export type TopUpInternals = Pick<MeterInternals, "pool" | "schema" | "ledger" | "config"> & {
  /** Whether alerts are configured (alert rows are written only then). */
  alerts: () => boolean;
};

export interface TopUpPayment {
  /** The Stripe event that reported it, or `meterkit:<charge id>` when the worker saw the success itself. */
  eventId: string;
  eventType: string;
  chargeId: string;
  userId: string;
  counter: string;
  credits: number;
  packId: string;
  paymentIntent: string;
  amount: number;
  currency: string;
}

/**
 * Credits a succeeded auto top-up through the pack path (`op_stripe_grant`): the grant is
 * idempotent by the PaymentIntent id, so the worker and the `payment_intent.succeeded` webhook
 * credit once between them, and refunds and disputes of the PaymentIntent claw back the same
 * way as for a bought pack. Then marks the charge succeeded (and queues its alert) once.
 */
export async function creditTopUp(internals: TopUpInternals, p: TopUpPayment): Promise<{ duplicate: boolean }> {
  const metadata = {
    stripe: { paymentIntent: p.paymentIntent, packId: p.packId, amountPaid: p.amount, currency: p.currency, eventId: p.eventId, autoTopUp: p.chargeId },
  };
  const res = await callLedger<{ duplicate?: boolean }>(internals.ledger, "op_stripe_grant", [
    p.eventId,
    p.eventType,
    p.userId,
    p.counter,
    p.credits,
    p.paymentIntent,
    p.paymentIntent,
    p.amount,
    p.currency,
    fingerprint("stripe-grant", p.paymentIntent, p.counter, p.credits),
    "grt_" + randomUUID().replace(/-/g, ""),
    "debt_" + randomUUID().replace(/-/g, ""),
    JSON.stringify(metadata),
  ], p.userId);
  await run(internals.pool, `SELECT ${internals.schema}.auto_top_up_succeed($1, $2, $3)`, [p.chargeId, p.paymentIntent, internals.alerts()]);
  return { duplicate: res.duplicate === true };
}
