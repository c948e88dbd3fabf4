import type { StripeStandIn, StripeStandInOptions } from "./stripeStandIn/types.js";

/**
 * Starts the local Stripe stand-in (Node only): the few Stripe API routes meterkit calls, a
 * hosted checkout page whose "Pay" sends a correctly signed `checkout.session.completed` to
 * `webhookUrl`, and failure injection. Point a real stripe-node client at it with
 * `new Stripe("sk_test_standin", standIn.clientOptions)`. Development and tests only: never
 * expose it. `close()` it when done.
 *
 * The server is imported when called, not when `meterkit/testing` loads, so the entry stays
 * safe in a browser bundle (where only `createFakeMeter` makes sense).
 */
export async function startStripeStandIn(options: StripeStandInOptions = {}): Promise<StripeStandIn> {
  const { startStripeStandIn: start } = await import("./stripeStandIn/startStripeStandIn.js");
  return start(options);
}
