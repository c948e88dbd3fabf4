import type pg from "pg";
import { createMeter } from "../src/server/index.js";
import { migrationFiles } from "../src/server/migrate.js";

/**
 * For the tools that compare two versions of the ledger SQL in one database: creates `schema`
 * with the migrations up to `maxId` applied (9999: all), a plan with a huge quota, `users`
 * subscribed users `u0`…, and 2,000 reserve+commit pairs spread over them, so the tables and
 * indexes are not empty when timing starts.
 */
export async function buildLedgerSchema(admin: pg.Pool, databaseUrl: string, schema: string, maxId: number, users: number): Promise<void> {
  const c = await admin.connect();
  await c.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.migrations (id int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
  for (const f of await migrationFiles()) {
    if (f.id > maxId) continue;
    await c.query("BEGIN"); await c.query(`SET LOCAL search_path TO ${schema}, pg_catalog, pg_temp`); await c.query(f.sql);
    await c.query(`INSERT INTO ${schema}.migrations (id, name) VALUES ($1, $2)`, [f.id, f.name]); await c.query("COMMIT");
  }
  c.release();
  const m = createMeter({ database: databaseUrl, schema, plans: { bench: { limits: { tokens: { quota: 1e15, period: "none" } } } }, sweepInterval: 0, poolSize: 1 });
  await m.reservation("sync");
  await admin.query(`INSERT INTO ${schema}.subscriptions (user_id, plan_id, started_at) SELECT 'u' || i, 'bench', now() FROM generate_series(0, ${users - 1}) i`);
  for (let i = 0; i < 2000; i++) { const r = await m.reserve(`u${(i * 7919) % users}`, "tokens", 1000); if (r.allowed) await m.commit(r.reservationId, { actual: 400 }); }
  await m.close();
}
