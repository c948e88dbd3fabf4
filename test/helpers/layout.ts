import type pg from "pg";
import { partitionByUser } from "./partitionByUser.js";

/**
 * The table layout the suites run on: `MK_TEST_LAYOUT=partitioned` turns the per-user tables
 * of every schema a meter migrates into tables hash-partitioned by user_id
 * (test/helpers/partitionByUser.ts), so the same tests prove the ledger works on the layout a
 * sharded Postgres (Citus) gives it. Default: the plain tables the migrations create.
 */
export const PARTITIONED = process.env.MK_TEST_LAYOUT === "partitioned";

/** Runs `migrate` and, on the partitioned layout, converts the schema it migrated. */
export async function migrateOnLayout(
  migrate: (pool: pg.Pool, schema: string) => Promise<string[]>,
  pool: pg.Pool,
  schema: string,
): Promise<string[]> {
  const applied = await migrate(pool, schema);
  if (PARTITIONED) await partitionByUser(pool, schema);
  return applied;
}
