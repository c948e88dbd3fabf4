import type { AutoTopUpPauseReason, AutoTopUpState, AutoTopUpStatus } from "../../core/autoTopUp.js";

export type { AutoTopUpPauseReason, AutoTopUpState, AutoTopUpStatus };
/** `createMeter({ autoTopUp })`: how the auto top-up worker runs. Needs `stripe` with packs. */
export interface AutoTopUpOptions {
  /**
   * How often the meter's own worker charges armed top-ups and re-observes enabled users, in ms
   * (an unref'd timer; an armed top-up also wakes it at once). 0 turns the timer off: call
   * `meter.autoTopUp.run()` from your own worker or cron instead. Default 5 000.
   */
  interval?: number;
  /** How long a worker may hold a charge before another takes it over, in ms. Must exceed `requestTimeoutMs`. Default 120 000. */
  leaseMs?: number;
  /** Timeout of one Stripe request, in ms. Default 30 000. */
  requestTimeoutMs?: number;
}

/** What a user (or the host) sets for one counter. */
export interface AutoTopUpSettingsInput {
  /** The counter to keep topped up (`"tokens"`). */
  counter: string;
  /** On or off. Turning it on clears a pause and fires at once if `remaining` is already below the threshold. */
  enabled: boolean;
  /** The pack bought each time (a `stripe.packs` id for this counter). Required the first time. */
  packId?: string;
  /** Buy when `remaining` drops below this many base units (> 0). Required the first time. */
  threshold?: number;
  /**
   * Most money charged automatically per period of the counter (a calendar month, UTC, for a
   * counter that never renews), in the pack currency's minor unit; at least the pack's price.
   * Required the first time.
   */
  maxPerPeriod?: number;
}




/** Options of a settings change (`meter.autoTopUp.set` / `disable`). */
export interface AutoTopUpChangeOptions {
  /**
   * Makes the change once: a retry with the same key and the same arguments answers the first
   * call's state without applying it again (a retried "turn on" does not clear a pause that
   * happened since); the same key with other arguments is `conflict` (409). Keys are per user
   * and kept 24 h. `PUT /auto-top-up` passes its `Idempotency-Key` header here. Default: none.
   */
  idempotencyKey?: string;
}

/** Options of one `meter.autoTopUp.run()`. */
export interface RunAutoTopUpOptions {
  /** Most charges attempted in this run. Default 100. */
  limit?: number;
}

/** What one run did. */
export interface RunAutoTopUpResult {
  /** Users re-observed (enabled settings whose trigger may have been missed). */
  observed: number;
  /** Charge ids that succeeded and were credited. */
  succeeded: string[];
  /** Charge ids waiting for Stripe (processing) — credited by the webhook. */
  processing: string[];
  /** Charge ids that failed; their settings are paused. */
  failed: string[];
  /** Charge ids put back for a retry (network or Stripe 5xx). */
  retrying: string[];
}

/** `meter.autoTopUp`: the server-side API (the browser routes call the same). */
export interface AutoTopUpApi {
  /** Whether a card is saved and each counter's settings (counters never set are absent). */
  get(userId: string): Promise<AutoTopUpStatus>;
  /** Creates or changes one counter's settings; answers the new state. */
  set(userId: string, input: AutoTopUpSettingsInput, options?: AutoTopUpChangeOptions): Promise<AutoTopUpState>;
  /** Turns one counter's auto top-up off (settings kept). */
  disable(userId: string, counter: string, options?: AutoTopUpChangeOptions): Promise<AutoTopUpState>;
  /**
   * A Checkout Session in `setup` mode that saves a card for off-session charges; resolves to
   * its URL. `successUrl` / `cancelUrl` default to `stripe.successUrl` / `stripe.cancelUrl`.
   */
  setupCheckout(userId: string, input?: { successUrl?: unknown; cancelUrl?: unknown }): Promise<{ url: string }>;
  /** The worker: charges armed top-ups (leased, SKIP LOCKED, backoff) and re-observes enabled users. */
  run(options?: RunAutoTopUpOptions): Promise<RunAutoTopUpResult>;
  /** Re-reads the user's usage and arms a top-up on a downward crossing (called after each change). */
  observe(userId: string): Promise<void>;
  /** Resolves once the observations queued so far (after each change) and a running worker pass are done (for tests). */
  flush(): Promise<void>;
}
