import type { Meter } from "../src/server/index.js";

/** The ledger tables that hold a user's rows (Stripe customer links and event ids stay). */
const USER_TABLES = ["entries", "holds", "grants", "balances", "counters", "idempotency", "stripe_payments", "subscriptions"];

/**
 * Puts a user back to the start: no usage, no holds, no purchased credits, a fresh
 * subscription to `planId`. Demo-only: meterkit's ledger is append-only on purpose, and a real
 * app would never erase a user's entries (use `meter.adjust` or a grant to correct a balance).
 *
 * Runs under the same (user, counter) advisory locks as the ledger, so it cannot interleave
 * with a reserve or commit, then announces the change so open pages update live.
 */
export async function resetDemoUser(meter: Meter, userId: string, planId: string): Promise<void> {
  const { pool, schema, config } = meter.internals;
  const counters = Object.keys(config.plans[planId]?.limits ?? {});
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    for (const counter of counters) await client.query(`SELECT pg_advisory_xact_lock(${schema}.lock_key($1, $2))`, [userId, counter]);
    for (const table of USER_TABLES) await client.query(`DELETE FROM ${schema}.${table} WHERE user_id = $1`, [userId]);
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    client.release();
  }
  // A new subscription row takes a new, larger version, so clients accept the reset usage.
  await meter.upsertSubscription({ userId, planId });
  meter.internals.notifier.announce(userId);
}
