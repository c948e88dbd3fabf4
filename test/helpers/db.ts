import { randomUUID } from "node:crypto";
import pg from "pg";
import { inject } from "vitest";

/**
 * A fresh database for one test file, on the run's PostgreSQL. Returns its URL and a drop().
 */
export async function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const base = inject("databaseUrl");
  const name = "mk_" + randomUUID().replace(/-/g, "").slice(0, 20);
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = "/" + name;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
