import { MeterError } from "../../core/errors.js";
import { createAlerts } from "../alerts/createAlerts.js";
import type { AlertsApi, AlertsOptions } from "../alerts/types.js";
import type { MeterInternals } from "../createMeter.js";
import type { StripeBilling } from "../stripe/createStripeBilling.js";
import { autoTopUpEvents } from "./autoTopUpEvents.js";
import { createAutoTopUp } from "./createAutoTopUp.js";
import type { AutoTopUpApi, AutoTopUpOptions } from "./types.js";

/** Auto top-up and alerts of one meter, wired together, as createMeter installs them. */
export interface CreditLifecycle {
  autoTopUp: AutoTopUpApi;
  alerts: AlertsApi;
  /** After a committed change of `userId`: may arm a top-up or queue an alert (off the ledger's hot path). */
  changed(userId: string): void;
}

/**
 * Builds `meter.autoTopUp` and `meter.alerts` from `createMeter({ autoTopUp, alerts })`:
 * registers the Stripe events auto top-up handles and the cleanup `close()` runs. Without the
 * options, `changed` does nothing and the APIs are inert (`autoTopUp.set` is `not_found`).
 */
export function createCreditLifecycle(
  internals: Pick<MeterInternals, "pool" | "schema" | "schemaName" | "config" | "ledger" | "onClose">,
  stripe: StripeBilling | null,
  options: { autoTopUp?: AutoTopUpOptions | undefined; alerts?: AlertsOptions | undefined },
): CreditLifecycle {
  if (options.autoTopUp && !stripe) {
    throw new MeterError("invalid_request", "createMeter: `autoTopUp` needs `stripe` (a client and packs).", { field: "autoTopUp" });
  }
  const alerts = options.alerts ? createAlerts(internals, options.alerts) : null;
  const hooks = { alerts: () => alerts !== null, kickAlerts: () => alerts?.wake() };
  const autoTopUp = options.autoTopUp && stripe ? createAutoTopUp(internals, stripe.config, options.autoTopUp, hooks) : null;
  if (autoTopUp && stripe) {
    stripe.addEventHandler(autoTopUpEvents({ ...internals, alerts: hooks.alerts }, stripe.config, autoTopUp, hooks.kickAlerts));
  }
  // Stop the timers first, then let work in flight finish before the pool closes.
  internals.onClose.push(async () => {
    autoTopUp?.stop();
    alerts?.stop();
    await autoTopUp?.flush();
    await alerts?.flush();
  });
  return {
    autoTopUp: autoTopUp ?? createAutoTopUp(internals, null, { interval: 0 }),
    alerts: alerts ?? { run: async () => ({ delivered: [], retrying: [], failed: [] }), flush: async () => {} },
    changed(userId) {
      autoTopUp?.changed(userId);
      alerts?.changed(userId);
    },
  };
}
