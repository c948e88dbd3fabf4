import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { accessSync, chmodSync, constants, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./pg-global-setup.js";

/** Where PgBouncer is looked for: `$PGBOUNCER`, then Debian's `/usr/sbin/pgbouncer`, then `/usr/bin`. */
export function pgbouncerBinary(): string | null {
  for (const p of [process.env.PGBOUNCER, "/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]) {
    if (!p) continue;
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

/** Why PgBouncer tests are skipped, or null when they can run. */
export const PGBOUNCER_MISSING = pgbouncerBinary()
  ? null
  : "PgBouncer is not installed (apt-get install -y pgbouncer, or set PGBOUNCER=/path/to/pgbouncer): the PgBouncer suite is skipped.";

export interface PgBouncer {
  port: number;
  /** The same database URL, through PgBouncer. */
  wrap(url: string): string;
  /** A URL of PgBouncer's admin console (`SHOW POOLS`, `SHOW CONFIG`). */
  adminUrl: string;
  stop(): Promise<void>;
}

/**
 * Starts PgBouncer in transaction pooling mode on a free port in front of the Postgres of
 * `upstreamUrl` (every database name is forwarded). `poolSize` server connections per
 * database/user pair, so that many more clients share few server connections. Runs as the
 * `postgres` system user when started as root (PgBouncer refuses to run as root).
 */
export async function startPgBouncer(upstreamUrl: string, options: { poolSize?: number } = {}): Promise<PgBouncer> {
  const bin = pgbouncerBinary();
  if (!bin) throw new Error(PGBOUNCER_MISSING!);
  const up = new URL(upstreamUrl);
  const user = decodeURIComponent(up.username || "postgres");
  const password = decodeURIComponent(up.password || "");
  const port = await freePort();
  const dir = join(tmpdir(), "meterkit-pgbouncer-" + randomUUID());
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o777);
  const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
  writeFileSync(join(dir, "userlist.txt"), `${q(user)} ${q(password)}\n`);
  writeFileSync(
    join(dir, "pgbouncer.ini"),
    [
      "[databases]",
      `* = host=${up.hostname} port=${up.port || 5432}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = plain",
      `auth_file = ${join(dir, "userlist.txt")}`,
      `admin_users = ${user}`,
      "pool_mode = transaction",
      `default_pool_size = ${options.poolSize ?? 8}`,
      "max_client_conn = 1000",
      "ignore_startup_parameters = extra_float_digits,options,application_name",
      `pidfile = ${join(dir, "pgbouncer.pid")}`,
      "",
    ].join("\n"),
  );
  for (const f of ["userlist.txt", "pgbouncer.ini"]) chmodSync(join(dir, f), 0o644);
  const args = [join(dir, "pgbouncer.ini")];
  if (process.getuid?.() === 0) args.unshift("-u", "postgres");
  const proc: ChildProcess = spawn(bin, args, { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  proc.stderr!.on("data", (c: Buffer) => {
    if (log.length < 20_000) log += c.toString("utf8");
  });
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  // Ready when the port accepts connections.
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`pgbouncer exited at start-up: ${log}`);
    if (await canConnect(port)) break;
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`pgbouncer did not listen within 10 s: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const wrap = (url: string) => {
    const u = new URL(url);
    u.hostname = "127.0.0.1";
    u.port = String(port);
    return u.toString();
  };
  const admin = new URL(upstreamUrl);
  admin.hostname = "127.0.0.1";
  admin.port = String(port);
  admin.pathname = "/pgbouncer";
  return {
    port,
    wrap,
    adminUrl: admin.toString(),
    async stop() {
      if (proc.exitCode === null) {
        proc.kill("SIGINT");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}
