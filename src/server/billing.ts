import type { Pack } from "../core/types.js";

/**
 * What the HTTP handler needs from a billing integration (Stripe): the packs, a checkout for
 * the identified user, and the webhook. `createMeter({ stripe })` installs one on
 * `internalsOf(meter).billing`; without it the billing routes answer `not_found`.
 */
export interface BillingHooks {
  /** The packs on sale. */
  packs(): Pack[];
  /** Starts a checkout of `packId` for `userId` (already identified); resolves to the URL to send the browser to. */
  checkout(userId: string, input: { packId?: unknown; successUrl?: unknown; cancelUrl?: unknown; saveCard?: unknown }): Promise<{ url: string }>;
  /**
   * Handles one webhook delivery: verifies the signature on the raw bytes, applies the event
   * exactly once. Throws `MeterError("invalid_request")` on a bad signature.
   */
  webhook(rawBody: Uint8Array, signature: string | null): Promise<{ received: true; duplicate?: boolean; ignored?: boolean }>;
}
