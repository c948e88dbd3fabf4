import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, test } from "vitest";
import { createMeterClient } from "../../src/client/index.js";
import { createMeterHandler } from "../../src/server/index.js";
import { TEST_PLANS, testMeter, type TestMeter } from "../helpers/meter.js";
import { SECRET, listen, openSse } from "../http/fixtures.js";

let t: TestMeter;
let a: Awaited<ReturnType<typeof listen>>;
let b: { url: string; child: ChildProcess; pid: number };

/** Starts server process B: another Node process, same database. */
async function startProcessB(databaseUrl: string) {
  const script = fileURLToPath(new URL("./serverProcess.ts", import.meta.url));
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    env: { ...process.env, DATABASE_URL: databaseUrl, PLANS: JSON.stringify(TEST_PLANS), SECRET_KEY: SECRET },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("\n")) resolve(out.split("\n")[0]!);
    });
    child.once("exit", (code) => reject(new Error(`process B exited with ${code}`)));
  });
  const { port, pid } = JSON.parse(line) as { port: number; pid: number };
  return { url: `http://127.0.0.1:${port}`, child, pid };
}

beforeAll(async () => {
  t = await testMeter();
  await t.meter.upsertSubscription({ userId: "xena", planId: "pro" });
  a = await listen(createMeterHandler(t.meter, { secretKeys: SECRET }));
  b = await startProcessB(t.url);
}, 60_000);

afterAll(async () => {
  if (b) {
    const exited = new Promise((r) => b.child.once("exit", r));
    b.child.kill("SIGTERM");
    await exited;
  }
  await a?.close();
  await t?.cleanup();
});

test("a commit made through server process A reaches a subscriber connected to process B", async () => {
  expect(b.pid).not.toBe(process.pid);
  const s = await openSse(`${b.url}/usage/stream`, { "x-session": "xena" });
  try {
    const first = await s.next();
    const viaA = createMeterClient({ url: a.url, secretKey: SECRET });
    const r = await viaA.reserve("xena", "llm.tokens", 800);
    if (!r.allowed) throw new Error("denied");
    const held = await s.next();
    expect(held.counters.find((c) => c.key === "tokens")!.held).toBe(800);
    await viaA.commit(r.reservationId, { actual: 321 });
    const committed = await s.next();
    expect(committed.counters.find((c) => c.key === "tokens")).toMatchObject({
      held: 0,
      used: first.counters.find((c) => c.key === "tokens")!.used + 321,
    });
    expect(committed).toEqual(await t.meter.usage("xena"));
  } finally {
    await s.close();
  }
}, 30_000);
