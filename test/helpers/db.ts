import { randomUUID } from "node:crypto";
import pg from "pg";
import { inject } from "vitest";

/**
 * A fresh database for one test file, on the run's PostgreSQL. Returns its URL and a drop().
 */
export async function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const base = inject("databaseUrl");
  const name = "mk_" + randomUUID().replace(/-/g, "").slice(0, 20);
  // Test files start in parallel; a CREATE DATABASE that collides with another's use of the
  // template is retried rather than failing the whole file.
  for (let attempt = 1; ; attempt++) {
    const admin = new pg.Client({ connectionString: base });
    try {
      await admin.connect();
      await admin.query(`CREATE DATABASE ${name}`);
      break;
    } catch (err) {
      if (attempt >= 5) throw err;
      await new Promise((r) => setTimeout(r, 200 * attempt));
    } finally {
      await admin.end().catch(() => {});
    }
  }
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
