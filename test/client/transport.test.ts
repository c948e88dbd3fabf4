import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, expect, test, vi } from "vitest";
import { createMeterClient } from "../../src/client/index.js";
import { MeterError } from "../../src/core/errors.js";
import { createMeterHandler } from "../../src/server/index.js";
import { testMeter, type TestMeter } from "../helpers/meter.js";
import { SECRET, listen } from "../http/fixtures.js";

// In Node the client speaks node:http with a keep-alive Agent of its own (Node's fetch costs
// about three times the CPU per call); these check that it keeps every promise fetch kept.
let t: TestMeter;
beforeAll(async () => {
  t = await testMeter();
  await t.meter.upsertSubscription({ userId: "transport", planId: "pro" });
});
afterAll(() => t.cleanup());
afterEach(() => vi.unstubAllGlobals());

/** A bare server whose answers the test writes by hand; records each request's Idempotency-Key. */
async function rawServer(answer: (n: number, req: IncomingMessage, res: ServerResponse) => void) {
  const keys: Array<string | undefined> = [];
  const server: Server = createServer((req, res) => {
    keys.push(req.headers["idempotency-key"] as string | undefined);
    req.resume();
    req.once("end", () => answer(keys.length, req, res));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    keys,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

test("in Node the client needs no fetch: 4 concurrent callers, 80 requests, one kept-alive connection each", async () => {
  vi.stubGlobal("fetch", () => Promise.reject(new Error("the global fetch was called")));
  const own = await listen(createMeterHandler(t.meter, { secretKeys: SECRET }));
  let opened = 0;
  own.server.on("connection", () => opened++);
  try {
    const api = createMeterClient({ url: own.url, secretKey: SECRET, retries: 0 });
    await Promise.all(
      [0, 1, 2, 3].map(async () => {
        for (let i = 0; i < 10; i++) {
          const r = await api.reserve("transport", "llm.tokens", 1);
          if (!r.allowed) throw new Error("denied");
          await api.commit(r.reservationId, { actual: 1 });
        }
      }),
    );
    expect(opened).toBe(4);
  } finally {
    await own.close();
  }
});

test("a `fetch` option is used for every call instead of node:http", async () => {
  const own = await listen(createMeterHandler(t.meter, { secretKeys: SECRET }));
  try {
    const seen: string[] = [];
    const api = createMeterClient({ url: own.url, secretKey: SECRET, fetch: (input, init) => (seen.push(String(input)), fetch(input, init)) });
    await api.usage("transport");
    expect(seen).toEqual([`${own.url}/v1/users/transport/usage`]);
  } finally {
    await own.close();
  }
});

test("an attempt with no answer within `timeout` is retried with the same key, then unavailable", async () => {
  const silent = await rawServer(() => {}); // never answers
  try {
    const api = createMeterClient({ url: silent.url, secretKey: SECRET, timeout: 150, retries: 1 });
    const started = performance.now();
    const err = await api.track("transport", "llm.tokens", 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MeterError);
    expect((err as MeterError).code).toBe("unavailable");
    expect(performance.now() - started).toBeGreaterThanOrEqual(300);
    expect(silent.keys).toHaveLength(2);
    expect(silent.keys[1]).toBe(silent.keys[0]);
  } finally {
    await silent.close();
  }
});

test("an answer cut off mid-body is a network failure: retried with the same key, the full answer wins", async () => {
  const cut = await rawServer((n, _req, res) => {
    if (n === 1) {
      res.writeHead(200, { "content-type": "application/json", "content-length": "64" });
      res.write('{"userId":"transport","cou');
      res.destroy();
    } else {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ userId: "transport", amount: 7 }));
    }
  });
  try {
    const api = createMeterClient({ url: cut.url, secretKey: SECRET });
    expect(await api.track("transport", "llm.tokens", 7)).toEqual({ userId: "transport", amount: 7 });
    expect(cut.keys).toHaveLength(2);
    expect(cut.keys[1]).toBe(cut.keys[0]);
  } finally {
    await cut.close();
  }
});

test("a non-JSON error page is judged by its status: a 502 is retried, a 500 is not", async () => {
  const proxy = await rawServer((n, _req, res) => {
    res.writeHead(n === 1 ? 502 : 500, { "content-type": "text/html" });
    res.end("<html>bad gateway</html>");
  });
  try {
    const api = createMeterClient({ url: proxy.url, secretKey: SECRET });
    const err = await api.usage("transport").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MeterError);
    expect(proxy.keys).toHaveLength(2);
  } finally {
    await proxy.close();
  }
});
