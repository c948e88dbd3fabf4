/*
 * The auto top-up wire shapes (`GET /auto-top-up`), shared by the server that answers them,
 * the React hook that reads them and the fake that plays them in tests.
 */

/** Why auto top-up paused itself. The user fixes it by saving a card again (or turning it back on). */
export type AutoTopUpPauseReason = "card_declined" | "requires_action" | "no_payment_method" | "pack_unavailable" | "payment_failed";

/** The auto top-up state of one counter (the `GET /auto-top-up` wire shape). */
export interface AutoTopUpState {
  counter: string;
  enabled: boolean;
  /** `off` (not enabled), `active`, or `paused` (see `pausedReason`). */
  status: "off" | "active" | "paused";
  packId: string;
  threshold: number;
  maxPerPeriod: number;
  currency: string;
  /** Charged automatically so far in the current period (minor units). */
  spentThisPeriod: number;
  /** A charge armed or under way. */
  inFlight: boolean;
  pausedReason: AutoTopUpPauseReason | null;
  /** Stripe's (or meterkit's) message for the pause, to show the user. */
  pausedMessage: string | null;
}

/** `GET /auto-top-up`: whether a card is saved, and each counter's settings. */
export interface AutoTopUpStatus {
  paymentMethodSaved: boolean;
  counters: AutoTopUpState[];
}
