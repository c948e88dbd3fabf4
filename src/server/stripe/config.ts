import type Stripe from "stripe";
import { assertAmount, assertId } from "../../core/amounts.js";
import { MeterError } from "../../core/errors.js";
import type { Pack } from "../../core/types.js";
import type { ResolvedConfig } from "../config.js";

/** A credit pack on sale. */
export interface StripePackOptions {
  /** Stable id the browser sends to `POST /checkout` (`"starter"`). */
  id: string;
  /** Shown to the user, and the product name on Stripe Checkout. */
  label: string;
  /** The counter the credits go to; a counter of some plan. */
  counter: string;
  /** Credits granted, in the counter's base unit (a safe integer > 0). */
  amount: number;
  /**
   * What the pack costs, in the currency's minor unit (`{ amount: 500, currency: "usd" }` is $5).
   * `GET /packs` shows it, and without `priceId` Checkout charges it (inline `price_data`).
   */
  price: { amount: number; currency: string };
  /**
   * A Stripe Price (`price_…`) Checkout charges instead of `price`. Keep `price` equal to it:
   * that is what users see before paying. Default: none (charge `price`).
   */
  priceId?: string;
}

/** A counter billed after the fact through a Stripe Meter. */
export interface StripeMeterOptions {
  /** The Stripe Meter's `event_name`. */
  eventName: string;
  /** The payload key of the value (the Meter's `value_settings.event_payload_key`). Default `"value"`. */
  valueKey?: string;
  /** The payload key of the customer (the Meter's `customer_mapping.event_payload_key`). Default `"stripe_customer_id"`. */
  customerKey?: string;
}

/** `createMeter({ stripe })`: credit packs through Checkout, the webhook, post-paid meter sync. */
export interface StripeOptions {
  /** Your Stripe client (`new Stripe(secretKey)`); meterkit never creates one. */
  client: Stripe;
  /**
   * The endpoint's signing secret (`whsec_…`), or several while you roll one: a delivery signed
   * with any of them is accepted.
   */
  webhookSecret: string | readonly string[];
  /** Credit packs on sale (`GET /packs`). Default: none. */
  packs?: readonly StripePackOptions[];
  /**
   * Where Checkout sends the user after paying (absolute URL; Stripe replaces
   * `{CHECKOUT_SESSION_ID}`). Required when there are packs.
   */
  successUrl?: string;
  /** Where Checkout sends the user who cancels (absolute URL). Required when there are packs. */
  cancelUrl?: string;
  /**
   * Origins (`https://app.example.com`) from which `POST /checkout` accepts a `successUrl` or
   * `cancelUrl` sent by the browser; any other is refused, so checkout cannot be an open
   * redirect. Default: the origins of `successUrl` and `cancelUrl`.
   */
  allowedRedirectOrigins?: readonly string[];
  /** How old a webhook signature may be, in seconds. Default 300. */
  tolerance?: number;
  /**
   * Tells this app's payments apart when several apps (or staging and production) share one
   * Stripe account and each endpoint receives every event: sessions carry it in metadata, and
   * the webhook ignores sessions without it or with another one. Default: none.
   */
  appId?: string;
  /**
   * Extra fields for the Stripe Customer created for a user on their first checkout (e.g. their
   * email). The link user ↔ customer is stored and reused. Default: none (metadata only).
   */
  customerParams?: (userId: string) => Stripe.CustomerCreateParams | Promise<Stripe.CustomerCreateParams>;
  /** Counters billed post-paid through Stripe Meters, by counter key. Default: none. */
  meters?: Record<string, StripeMeterOptions>;
  /**
   * How long after a period ends before its total is pushed, in ms: a commit that began before
   * the end is charged to the old period and must have finished. Default 60 000.
   */
  meterSettleMs?: number;
}

export interface ResolvedPack extends Pack {
  priceId: string | null;
}

export interface ResolvedStripeConfig {
  client: Stripe;
  secrets: string[];
  tolerance: number;
  appId: string | null;
  packs: Map<string, ResolvedPack>;
  successUrl: string | null;
  cancelUrl: string | null;
  allowedOrigins: Set<string>;
  customerParams: StripeOptions["customerParams"] | null;
  /** Per counter: the Stripe Meter and the post-paid plans whose periods are pushed. */
  meters: Map<string, Required<StripeMeterOptions> & { plans: string[] }>;
  meterSettleMs: number;
}

function fail(message: string, field: string): never {
  throw new MeterError("invalid_request", `createMeter: ${message}`, { field });
}

function absoluteUrl(value: unknown, field: string): URL {
  if (typeof value !== "string") fail(`${field} must be an absolute http(s) URL.`, field);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    fail(`${field} must be an absolute http(s) URL, got ${JSON.stringify(value)}.`, field);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") fail(`${field} must be an http(s) URL.`, field);
  return url;
}

/** Checks `createMeter({ stripe })` once, with messages that say what to fix. */
export function resolveStripeConfig(options: StripeOptions, config: ResolvedConfig): ResolvedStripeConfig {
  if (!options || typeof options !== "object") fail("`stripe` must be an object.", "stripe");
  const client = options.client;
  if (!client || typeof client !== "object" || typeof client.webhooks?.constructEvent !== "function") {
    fail("`stripe.client` must be a Stripe instance (`new Stripe(secretKey)`).", "stripe.client");
  }
  const secrets = (typeof options.webhookSecret === "string" ? [options.webhookSecret] : [...(options.webhookSecret ?? [])]).filter(
    (s) => typeof s === "string" && s.length > 0,
  );
  if (secrets.length === 0) fail("`stripe.webhookSecret` must be the endpoint's signing secret (`whsec_…`).", "stripe.webhookSecret");
  const tolerance = options.tolerance === undefined ? 300 : assertAmount(options.tolerance, "stripe.tolerance");

  const appId = options.appId === undefined ? null : assertId(options.appId, "stripe.appId");

  const packs = new Map<string, ResolvedPack>();
  for (const [i, p] of (options.packs ?? []).entries()) {
    const where = `stripe.packs[${i}]`;
    if (!p || typeof p !== "object") fail(`${where} must be an object.`, where);
    const id = assertId(p.id, `${where}.id`);
    if (packs.has(id)) fail(`pack id "${id}" is used twice.`, `${where}.id`);
    if (typeof p.label !== "string" || p.label.length === 0) fail(`${where}.label must be a non-empty string.`, `${where}.label`);
    if (!config.units.has(p.counter)) fail(`${where}.counter "${p.counter}" is not a counter of any plan.`, `${where}.counter`);
    const amount = assertAmount(p.amount, `${where}.amount`);
    const price = p.price as Partial<Pack["price"]> | undefined;
    if (!price || typeof price !== "object") fail(`${where}.price must be { amount, currency } in minor units.`, `${where}.price`);
    const priceAmount = assertAmount(price.amount, `${where}.price.amount`, { allowZero: true });
    if (typeof price.currency !== "string" || !/^[a-zA-Z]{3}$/.test(price.currency)) {
      fail(`${where}.price.currency must be an ISO 4217 code like "usd".`, `${where}.price.currency`);
    }
    if (p.priceId !== undefined && (typeof p.priceId !== "string" || p.priceId.length === 0)) {
      fail(`${where}.priceId must be a Stripe Price id ("price_…").`, `${where}.priceId`);
    }
    packs.set(id, {
      id,
      label: p.label,
      counter: p.counter,
      amount,
      price: { amount: priceAmount, currency: price.currency.toLowerCase() },
      priceId: p.priceId ?? null,
    });
  }

  const success = options.successUrl === undefined ? null : absoluteUrl(options.successUrl, "stripe.successUrl");
  const cancel = options.cancelUrl === undefined ? null : absoluteUrl(options.cancelUrl, "stripe.cancelUrl");
  if (packs.size > 0 && (!success || !cancel)) {
    fail("`stripe.successUrl` and `stripe.cancelUrl` are required when packs are on sale.", success ? "stripe.cancelUrl" : "stripe.successUrl");
  }
  const allowedOrigins = new Set<string>();
  if (options.allowedRedirectOrigins) {
    for (const o of options.allowedRedirectOrigins) {
      const url = absoluteUrl(o, "stripe.allowedRedirectOrigins");
      if (url.origin !== o.replace(/\/$/, "")) fail(`allowedRedirectOrigins must hold origins only, like "${url.origin}".`, "stripe.allowedRedirectOrigins");
      allowedOrigins.add(url.origin);
    }
  } else {
    if (success) allowedOrigins.add(success.origin);
    if (cancel) allowedOrigins.add(cancel.origin);
  }

  const meters = new Map<string, Required<StripeMeterOptions> & { plans: string[] }>();
  for (const [counter, m] of Object.entries(options.meters ?? {})) {
    const where = `stripe.meters.${counter}`;
    if (!config.units.has(counter)) fail(`${where}: "${counter}" is not a counter of any plan.`, where);
    if (!m || typeof m.eventName !== "string" || m.eventName.length === 0 || m.eventName.length > 100) {
      fail(`${where}.eventName must be the Stripe Meter's event name (1 to 100 characters).`, `${where}.eventName`);
    }
    // Only post-paid plans are billed through the meter: pre-paid users sharing the counter are not.
    const plans = Object.entries(config.plans).filter(([, p]) => p.postpaid === true && Object.hasOwn(p.limits, counter)).map(([id]) => id);
    if (plans.length === 0) {
      fail(`${where}: no plan with counter "${counter}" is post-paid; mark the plans billed after the fact with \`postpaid: true\`.`, where);
    }
    meters.set(counter, {
      plans,
      eventName: m.eventName,
      valueKey: m.valueKey ?? "value",
      customerKey: m.customerKey ?? "stripe_customer_id",
    });
  }
  const meterSettleMs = options.meterSettleMs === undefined ? 60_000 : assertAmount(options.meterSettleMs, "stripe.meterSettleMs", { allowZero: true });
  if (options.customerParams !== undefined && typeof options.customerParams !== "function") {
    fail("`stripe.customerParams` must be a function of the user id.", "stripe.customerParams");
  }

  return {
    client,
    secrets,
    tolerance,
    appId,
    packs,
    // The strings as given: URL#toString() would escape Stripe's `{CHECKOUT_SESSION_ID}`.
    successUrl: success ? (options.successUrl as string) : null,
    cancelUrl: cancel ? (options.cancelUrl as string) : null,
    allowedOrigins,
    customerParams: options.customerParams ?? null,
    meters,
    meterSettleMs,
  };
}
