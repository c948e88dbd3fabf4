import type { Meter } from "../createMeter.js";
import { internalsOf } from "../internals.js";
import { linkStripeCustomer as link, stripeCustomerOf as lookup } from "./customers.js";

/**
 * Links a user to an existing Stripe customer (`cus_…`), e.g. the one a post-paid subscription
 * bills: checkout and meter sync then use it. Replaces an earlier link.
 */
export function linkStripeCustomer(meter: Meter, userId: string, customerId: string): Promise<void> {
  return link(internalsOf(meter), userId, customerId);
}

/** The Stripe customer linked to `userId` (by `linkStripeCustomer` or a first checkout), or null. */
export function stripeCustomerOf(meter: Meter, userId: string): Promise<string | null> {
  return lookup(internalsOf(meter), userId);
}

export type { StripeOptions, StripePackOptions, StripeMeterOptions } from "./config.js";
export type { SyncStripeMetersOptions, SyncStripeMetersResult, MeterSyncItem } from "./syncStripeMeters.js";
export type { WebhookResult } from "./webhook.js";
export type { StripeBilling } from "./createStripeBilling.js";
