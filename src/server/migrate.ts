import { readFile, readdir } from "node:fs/promises";
import type pg from "pg";
import { ident } from "./db.js";

const MIGRATIONS_DIR = new URL("./migrations/", import.meta.url);

export interface MigrationFile {
  id: number;
  name: string;
  sql: string;
}

/** The numbered `.sql` files shipped with the package, in order. */
export async function migrationFiles(): Promise<MigrationFile[]> {
  const names = (await readdir(MIGRATIONS_DIR)).filter((n) => /^\d{4}_[a-z0-9_]+\.sql$/.test(n)).sort();
  return Promise.all(
    names.map(async (name) => ({ id: Number(name.slice(0, 4)), name, sql: await readFile(new URL(name, MIGRATIONS_DIR), "utf8") })),
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
  try {
    for (;;) {
      await client.query("BEGIN");
      try {
        await client.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 42))", ["meterkit.migrate:" + schema]);
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${q}`);
        await client.query(
          `CREATE TABLE IF NOT EXISTS ${q}.migrations (id int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
        );
        const { rows } = await client.query<{ max: number | null }>(`SELECT max(id) AS max FROM ${q}.migrations`);
        const next = files.find((f) => f.id > (rows[0]?.max ?? 0));
        if (!next) {
          await client.query("COMMIT");
          return applied;
        }
        await client.query(`SET LOCAL search_path TO ${q}, pg_catalog`);
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
    client.release();
  }
}
