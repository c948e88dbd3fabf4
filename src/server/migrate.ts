import { readFile, readdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type pg from "pg";
import { ident } from "./db.js";

// A path, not `new URL("./migrations/", import.meta.url)`: bundlers (Next.js's Turbopack,
// webpack) read that pattern as an asset import and fail the build on a folder.
const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), "migrations");

export interface MigrationFile {
  id: number;
  name: string;
  sql: string;
}

/** The numbered `.sql` files shipped with the package, in order. */
export async function migrationFiles(): Promise<MigrationFile[]> {
  const names = (await readdir(MIGRATIONS_DIR)).filter((n) => /^\d{4}_[a-z0-9_]+\.sql$/.test(n)).sort();
  return Promise.all(
    names.map(async (name) => ({ id: Number(name.slice(0, 4)), name, sql: await readFile(join(MIGRATIONS_DIR, name), "utf8") })),
  );
}

/**
 * Applies every migration not yet applied to `schema`, each in its own transaction. An
 * advisory lock per schema makes concurrent migrators take turns: the second finds the work
 * done and applies nothing. Returns the names applied.
 */
export async function migrate(pool: pg.Pool, schema: string): Promise<string[]> {
  const files = await migrationFiles();
  const q = ident(schema);
  const applied: string[] = [];
  const client = await pool.connect();
  // A dropped connection fails the statement in flight; without a listener pg would also
  // raise it as an unhandled 'error' event and crash the process.
  const ignoreSocketError = () => {};
  client.on("error", ignoreSocketError);
  try {
    for (;;) {
      await client.query("BEGIN");
      try {
        await client.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 42))", ["meterkit.migrate:" + schema]);
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${q}`);
        await client.query(
          `CREATE TABLE IF NOT EXISTS ${q}.migrations (id int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
        );
        // Every file not applied yet, lowest first: a migration added below the highest one
        // (two branches merged) is applied too, not skipped.
        const { rows } = await client.query<{ id: number }>(`SELECT id FROM ${q}.migrations`);
        const done = new Set(rows.map((r) => r.id));
        const next = files.find((f) => !done.has(f.id));
        if (!next) {
          await client.query("COMMIT");
          return applied;
        }
        // pg_temp last: unlisted, it is searched first for tables, and functions keep this path
        // (`SET search_path FROM CURRENT`), so a caller's temporary table could shadow ours.
        await client.query(`SET LOCAL search_path TO ${q}, pg_catalog, pg_temp`);
        await client.query(next.sql);
        await client.query(`INSERT INTO ${q}.migrations (id, name) VALUES ($1, $2)`, [next.id, next.name]);
        await client.query("COMMIT");
        applied.push(next.name);
      } catch (err) {
        await client.query("ROLLBACK").catch(() => {});
        throw err;
      }
    }
  } finally {
    client.removeListener("error", ignoreSocketError);
    client.release();
  }
}
