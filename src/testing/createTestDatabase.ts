/** A database of its own for one test file, and the way to drop it. */
export interface TestDatabase {
  /** Connection string of the new database (the server's URL with its name). */
  url: string;
  /** Drops the database, closing any connection still open to it. */
  drop(): Promise<void>;
}

/**
 * Creates an empty database on the server at `serverUrl` (e.g. the `url` of
 * {@link startEmbeddedPostgres}, or your CI's Postgres), named `mk_<random>`, so test files
 * that run in parallel never share tables. Node only; needs `pg`. Test files that start at the
 * same moment can collide on PostgreSQL's template database: each attempt is retried, 5 in all.
 */
export async function createTestDatabase(serverUrl: string): Promise<TestDatabase> {
  const [{ randomUUID }, { default: pg }] = await Promise.all([import("node:crypto"), import("pg")]);
  const name = "mk_" + randomUUID().replace(/-/g, "").slice(0, 20);
  for (let attempt = 1; ; attempt++) {
    const admin = new pg.Client({ connectionString: serverUrl });
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
  const url = new URL(serverUrl);
  url.pathname = "/" + name;
  return {
    url: url.toString(),
    async drop() {
      const admin = new pg.Client({ connectionString: serverUrl });
      await admin.connect();
      try {
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}
