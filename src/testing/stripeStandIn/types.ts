/**
 * A local stand-in for the few Stripe endpoints meterkit uses, for development, demos and tests.
 * It is NOT Stripe: no card is charged, nothing is checked beyond what meterkit sends. Point a
 * real stripe-node client at it with `new Stripe("sk_test_standin", standIn.clientOptions)`.
 */
export interface StripeStandInOptions {
  /** Port to listen on. Default 0 (a free port; read it from `port` / `url`). */
  port?: number;
  /** Interface to bind. Default `"127.0.0.1"`. */
  host?: string;
  /** The app's webhook URL (`…/stripe/webhook`). Settable later through `webhookUrl`. Default: none (events are only recorded). */
  webhookUrl?: string;
  /** The secret webhooks are signed with: configure the same `webhookSecret` in `createMeter`. Default `"whsec_standin"`. */
  webhookSecret?: string;
  /** Stripe Prices (`price_…` → amount in minor units and currency) that packs with a `priceId` charge. Default: none. */
  prices?: Record<string, { unitAmount: number; currency: string }>;
}

/** One request the stand-in received, as parsed. */
export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** The form (or JSON) body, decoded into nested objects. */
  body: Record<string, unknown>;
  at: Date;
}

/**
 * A failure to inject. `error` answers `status` (default 500) with a Stripe API error; `timeout`
 * never answers; `accept-then-timeout` does what was asked (records the meter event, the
 * customer…) and then never answers, like a crash or network loss after Stripe committed.
 */
export interface StandInFailure {
  /** Request path to fail, e.g. `"/v1/billing/meter_events"`. */
  path: string;
  /** Default `"POST"`. */
  method?: string;
  /** Default `"error"`. */
  mode?: "error" | "timeout" | "accept-then-timeout";
  /** HTTP status of `error`. Default 500. */
  status?: number;
  /** How many matching requests fail. Default 1; `Infinity` until `clearFailures()`. */
  times?: number;
}

/** A Checkout Session as the stand-in keeps it. */
export interface StandInSession {
  id: string;
  object: "checkout.session";
  mode: string;
  status: "open" | "complete" | "expired";
  payment_status: "unpaid" | "paid" | "no_payment_required";
  amount_total: number;
  amount_subtotal: number;
  currency: string;
  customer: string | null;
  client_reference_id: string | null;
  metadata: Record<string, string>;
  payment_intent: string | null;
  success_url: string;
  cancel_url: string | null;
  url: string | null;
  livemode: false;
  created: number;
  /** The SetupIntent of a completed `setup` session. */
  setup_intent: string | null;
  /** The label of the first line item (for the page). */
  description: string;
  /** `payment_intent_data` (or `setup_intent_data`) as sent: metadata, `setup_future_usage`. */
  intentData: { metadata?: Record<string, string>; setup_future_usage?: string };
}

/** How a saved test card behaves when charged: like Stripe's test cards `4242…`, `…0002` (declined) and `…3155` (3-D Secure). */
export type StandInCard = "succeed" | "decline" | "requires_action";

/** A PaymentIntent as the stand-in keeps it. */
export interface StandInPaymentIntent {
  id: string;
  object: "payment_intent";
  amount: number;
  amount_received: number;
  currency: string;
  customer: string | null;
  payment_method: string | null;
  setup_future_usage: string | null;
  off_session: boolean;
  status: "requires_confirmation" | "requires_action" | "requires_payment_method" | "processing" | "succeeded";
  metadata: Record<string, string>;
  last_payment_error: { type: string; code: string; message: string; decline_code?: string } | null;
  livemode: false;
}

/** A billing meter event the stand-in accepted (one per identifier, as Stripe deduplicates). */
export interface StandInMeterEvent {
  event_name: string;
  identifier: string;
  timestamp: number;
  payload: Record<string, string>;
}

/** An event the stand-in sent, and what the app answered. */
export interface StandInDelivery {
  event: StandInEvent;
  /** HTTP status of the app's answer; 0 when it could not be reached. */
  status: number;
  body: string;
}

export interface StandInEvent {
  id: string;
  object: "event";
  type: string;
  api_version: string;
  created: number;
  livemode: false;
  pending_webhooks: number;
  request: { id: null; idempotency_key: null };
  data: { object: Record<string, unknown> };
}

export interface StripeStandIn {
  /** `http://host:port` of the stand-in. */
  readonly url: string;
  readonly port: number;
  /** Spread into `new Stripe(key, { ...standIn.clientOptions })`. */
  readonly clientOptions: { host: string; port: number; protocol: "http" };
  /** Where events go; change it once the app listens. */
  webhookUrl: string | undefined;
  readonly webhookSecret: string;
  /** Every API request received, in order. */
  readonly requests: RecordedRequest[];
  readonly sessions: Map<string, StandInSession>;
  /** Meter events accepted, one per identifier. */
  readonly meterEvents: StandInMeterEvent[];
  /** Every event delivery attempt. */
  readonly deliveries: StandInDelivery[];
  /** PaymentIntents created (off-session auto top-ups) or paid through Checkout with a saved card. */
  readonly paymentIntents: Map<string, StandInPaymentIntent>;
  /** How the next saved card (Checkout `setup` mode, or `setup_future_usage`) behaves. Default `"succeed"`. */
  nextCard: StandInCard;
  /** Makes a saved card (`pm_…`) succeed, be declined, or need 3-D Secure from now on. */
  setCard(paymentMethod: string, behaviour: StandInCard): void;
  /** Fails the next matching requests. */
  fail(failure: StandInFailure): void;
  /** Removes injected failures and answers requests left hanging (with a 500). */
  clearFailures(): void;
  /**
   * Pays a session as the "Pay" button does: `checkout.session.completed` (paid). With
   * `{ async: true }` the completion is unpaid, as with a bank debit; then call `settle`.
   */
  pay(sessionId: string, options?: { async?: boolean }): Promise<StandInDelivery>;
  /** Settles a delayed payment: `checkout.session.async_payment_succeeded` (or `_failed`). */
  settle(sessionId: string, options?: { succeed?: boolean }): Promise<StandInDelivery>;
  /** Refunds (part of) a paid session's payment: `charge.refunded` with the cumulative amount. */
  refund(sessionId: string, amount?: number): Promise<StandInDelivery>;
  /** Disputes a paid session's payment: `charge.dispute.created`. */
  dispute(sessionId: string, amount?: number): Promise<StandInDelivery>;
  /** Builds, signs and delivers any event. */
  send(type: string, object: Record<string, unknown>): Promise<StandInDelivery>;
  /** Delivers an event again (a duplicate), optionally signed at another time or with another secret. */
  deliver(event: StandInEvent, options?: { timestamp?: number; secret?: string }): Promise<StandInDelivery>;
  /** The `Stripe-Signature` header for a payload, as Stripe computes it. */
  sign(payload: string, options?: { timestamp?: number; secret?: string }): string;
  close(): Promise<void>;
}
