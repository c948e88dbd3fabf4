/*
 * How the demo tests and `npm run screenshots` run the demo: `demo/server.ts` as `npm start`
 * runs it, in a child process, without Stripe keys (the local stand-in).
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** A running demo server. */
export interface DemoProcess {
  /** Where it listens, as it printed it (`http://127.0.0.1:PORT`). */
  url: string;
  /** Stops it (SIGTERM) and waits for it to exit; nothing if it already has. */
  stop(): Promise<void>;
}

/**
 * `demo/server.ts` on a free port against `databaseUrl`, with `env` added (e.g. `DEMO_QUOTA`,
 * `DEMO_WORD_MS`); resolves once it prints its URL, rejects with its output if it exits first.
 */
export async function startDemo(databaseUrl: string, env: Record<string, string>): Promise<DemoProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "demo/server.ts"], {
    cwd: ROOT,
    env: { ...process.env, PORT: "0", DATABASE_URL: databaseUrl, STRIPE_SECRET_KEY: "", STRIPE_WEBHOOK_SECRET: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = /ready in [\d.]+ s: (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code) => reject(new Error(`demo/server.ts exited (${code}) before it was ready:\n${out}`)));
  });
  return {
    url,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}
