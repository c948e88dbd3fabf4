import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, expect, test } from "vitest";
import { freePort } from "../../src/testing/index.js";
import { freshDatabase } from "../helpers/db.js";

/*
 * The demo listens before its app is ready (the Stripe success URL needs the port). A request
 * that arrives in between must be answered — 503 `unavailable` with `Retry-After` — never left
 * hanging. The test connects as early as the port accepts.
 */
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
let server: ChildProcess | undefined;
let drop: (() => Promise<void>) | undefined;

afterAll(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server!.once("exit", r));
    server.kill("SIGTERM");
    await exited;
  }
  await drop?.();
});

/** The first answer from the port, as soon as it accepts connections; fails if that answer never comes. */
async function firstAnswer(url: string, init: RequestInit, exited: () => string | null): Promise<Response> {
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; ) {
    if (exited()) throw new Error(`the demo exited: ${exited()}`);
    try {
      return await fetch(url, { ...init, signal: AbortSignal.timeout(5_000) });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause;
      if (cause?.code !== "ECONNREFUSED") throw new Error(`a request made during start-up got no answer: ${String(err)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  throw new Error("the demo never listened");
}

test("a request made while the demo starts gets 503 unavailable with Retry-After, then the demo answers", async () => {
  const db = await freshDatabase();
  drop = db.drop;
  const port = await freePort();
  let out = "";
  server = spawn(process.execPath, ["--import", "tsx", "demo/server.ts"], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), DATABASE_URL: db.url, STRIPE_SECRET_KEY: "", STRIPE_WEBHOOK_SECRET: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  server.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  server.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  const exited = () => (server!.exitCode === null ? null : `code ${server!.exitCode}\n${out}`);
  const base = `http://127.0.0.1:${port}`;

  const early = await firstAnswer(`${base}/api/demo`, {}, exited);
  expect(early.status, out).toBe(503);
  expect(early.headers.get("retry-after")).toBe("1");
  expect(await early.json()).toEqual({ error: { code: "unavailable", message: expect.stringMatching(/starting/) } });

  const page = await fetch(`${base}/`, { headers: { accept: "text/html" }, signal: AbortSignal.timeout(5_000) });
  if (page.status === 503) expect(await page.text()).toMatch(/http-equiv="refresh"/);

  // Then, once ready, the same route answers.
  for (const deadline = Date.now() + 60_000; ; ) {
    const res = await fetch(`${base}/api/demo`, { signal: AbortSignal.timeout(5_000) });
    if (res.status === 200) {
      expect(await res.json()).toMatchObject({ userId: expect.any(String) });
      break;
    }
    expect(res.status).toBe(503);
    if (Date.now() > deadline) throw new Error(`the demo never became ready:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}, 120_000);
