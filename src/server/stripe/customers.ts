import { createHash } from "node:crypto";
import { assertId } from "../../core/amounts.js";
import { toMeterError } from "../db.js";
import type { MeterInternals } from "../createMeter.js";
import type { ResolvedStripeConfig } from "./config.js";
import { fromStripeError } from "./stripeError.js";

/** The Stripe customer linked to `userId`, or null. */
export async function stripeCustomerOf(internals: Pick<MeterInternals, "pool" | "schema">, userId: string): Promise<string | null> {
  const user = assertId(userId, "userId");
  try {
    const { rows } = await internals.pool.query<{ customer_id: string }>(
      `SELECT customer_id FROM ${internals.schema}.stripe_customers WHERE user_id = $1`,
      [user],
    );
    return rows[0]?.customer_id ?? null;
  } catch (err) {
    throw toMeterError(err);
  }
}

/**
 * Links a user to an existing Stripe customer (`cus_…`), e.g. the one their subscription bills,
 * so checkout and meter sync use it. Replaces an earlier link.
 */
export async function linkStripeCustomer(
  internals: Pick<MeterInternals, "pool" | "schema">,
  userId: string,
  customerId: string,
): Promise<void> {
  const user = assertId(userId, "userId");
  const customer = assertId(customerId, "customerId");
  try {
    await internals.pool.query(
      `INSERT INTO ${internals.schema}.stripe_customers (user_id, customer_id) VALUES ($1, $2)
       ON CONFLICT (user_id) DO UPDATE SET customer_id = excluded.customer_id`,
      [user, customer],
    );
  } catch (err) {
    throw toMeterError(err);
  }
}

/**
 * The user's Stripe customer, created on first use. Two concurrent first checkouts send the same
 * Stripe idempotency key, so Stripe creates one customer; the first link stored wins.
 */
export async function ensureStripeCustomer(
  internals: Pick<MeterInternals, "pool" | "schema" | "schemaName">,
  stripe: ResolvedStripeConfig,
  userId: string,
): Promise<string> {
  const known = await stripeCustomerOf(internals, userId);
  if (known) return known;
  const extra = stripe.customerParams ? await stripe.customerParams(userId) : {};
  let id: string;
  try {
    const customer = await stripe.client.customers.create(
      { ...extra, metadata: { ...(extra.metadata ?? {}), meterkit_user_id: userId } },
      { idempotencyKey: "meterkit-customer-" + createHash("sha256").update(internals.schemaName + "\u001f" + userId).digest("hex") },
    );
    id = customer.id;
  } catch (err) {
    throw fromStripeError(err, "create a customer");
  }
  try {
    const { rows } = await internals.pool.query<{ customer_id: string }>(
      `WITH ins AS (
         INSERT INTO ${internals.schema}.stripe_customers (user_id, customer_id) VALUES ($1, $2)
         ON CONFLICT DO NOTHING RETURNING customer_id)
       SELECT customer_id FROM ins UNION ALL
       SELECT customer_id FROM ${internals.schema}.stripe_customers WHERE user_id = $1`,
      [userId, id],
    );
    return rows[0]?.customer_id ?? id;
  } catch (err) {
    throw toMeterError(err);
  }
}
