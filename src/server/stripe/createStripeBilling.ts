import type { Pack } from "../../core/types.js";
import type { BillingHooks } from "../billing.js";
import type { MeterInternals } from "../createMeter.js";
import { createCheckout } from "./checkout.js";
import { resolveStripeConfig, type ResolvedStripeConfig, type StripeOptions } from "./config.js";
import { syncStripeMeters, type SyncStripeMetersOptions, type SyncStripeMetersResult } from "./syncStripeMeters.js";
import { handleStripeWebhook, type StripeEventHandler } from "./webhook.js";

/** The Stripe integration of one meter: the billing hooks the HTTP handler calls, and meter sync. */
export interface StripeBilling extends BillingHooks {
  /** The checked configuration. */
  readonly config: ResolvedStripeConfig;
  /** Pushes closed periods of mapped counters to Stripe Meters (see `meter.syncStripeMeters`). */
  syncMeters(options?: SyncStripeMetersOptions): Promise<SyncStripeMetersResult>;
  /** Lets an extension (auto top-up) handle webhook events before the built-in ones. */
  addEventHandler(handler: StripeEventHandler): void;
}

/** Checks `options` (throws `invalid_request` naming what to fix) and builds the integration. */
export function createStripeBilling(
  internals: Pick<MeterInternals, "pool" | "schema" | "schemaName" | "config" | "ledger">,
  options: StripeOptions,
): StripeBilling {
  const config = resolveStripeConfig(options, internals.config);
  const packs: Pack[] = [...config.packs.values()].map((p) => ({
    id: p.id,
    label: p.label,
    counter: p.counter,
    amount: p.amount,
    price: { ...p.price },
  }));
  const handlers: StripeEventHandler[] = [];
  return {
    config,
    addEventHandler: (h) => void handlers.push(h),
    packs: () => packs.map((p) => ({ ...p, price: { ...p.price } })),
    checkout: (userId, input) => createCheckout(internals, config, userId, input),
    webhook: (rawBody, signature) => handleStripeWebhook(internals, config, rawBody, signature, handlers),
    syncMeters: (o) => syncStripeMeters(internals, config, o),
  };
}
