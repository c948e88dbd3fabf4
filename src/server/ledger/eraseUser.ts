import { assertId } from "../../core/amounts.js";
import { toMeterError } from "../db.js";
import type { LedgerContext } from "./context.js";

/**
 * Deletes every row the ledger keeps about one user, in one transaction: from every table of
 * the schema that has a `user_id` column (entries, holds, grants, balances, subscription,
 * idempotency keys, Stripe customer link, payments, meter outbox — and any table a later
 * migration adds), so no list here can fall behind the migrations. Takes the user's advisory
 * locks first, in the ledger's order, so it cannot interleave with a reserve or commit.
 * Returns how many rows went.
 */
export async function eraseUser(ctx: LedgerContext, userId: string): Promise<number> {
  const user = assertId(userId, "userId");
  await ctx.ready();
  const counters = new Set<string>();
  for (const plan of Object.values(ctx.config.plans)) for (const key of Object.keys(plan.limits)) counters.add(key);
  let client;
  try {
    client = await ctx.pool.connect();
  } catch (err) {
    throw toMeterError(err);
  }
  let deleted = 0;
  try {
    await client.query("BEGIN");
    for (const counter of [...counters].sort()) {
      await client.query(`SELECT pg_advisory_xact_lock(${ctx.schema}.lock_key($1, $2))`, [user, counter]);
    }
    const { rows: tables } = await client.query<{ name: string }>(
      // Tables and partitioned tables (not their partitions, nor views) with a user_id column.
      `SELECT quote_ident(c.relname) AS name
         FROM pg_catalog.pg_class c
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = 'user_id' AND NOT a.attisdropped
        WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        ORDER BY c.relname`,
      [ctx.schema.slice(1, -1)],
    );
    for (const { name } of tables) {
      const res = await client.query(`DELETE FROM ${ctx.schema}.${name} WHERE user_id = $1`, [user]);
      deleted += res.rowCount ?? 0;
    }
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw toMeterError(err);
  } finally {
    client.release();
  }
  if (deleted > 0) ctx.announce(user);
  return deleted;
}
