import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { meterRouter } from "../../src/express/index.js";
import { createMeterHandler, sendWebResponse, toNodeHandler, toWebRequest, type MeterHandler } from "../../src/server/index.js";
import { testMeter, type TestMeter } from "../helpers/meter.js";
import { SECRET } from "./fixtures.js";

/*
 * A handler made with `maxBodyBytes` above the Node adapters' default buffer (1 MiB) must accept
 * every body up to its own limit through every Node adapter, as the Web handler does, and
 * answer 413 past it. (The adapters used to stop reading at 1 MiB whatever the handler's
 * limit, so a 1.5 MiB body under a 3 MB limit was cut short and answered 400.)
 */

const LIMIT = 3_000_000;
let t: TestMeter;
let handler: MeterHandler<IncomingMessage>;
const servers: Server[] = [];
const ports: Record<string, number> = {};

async function start(name: string, listener: Parameters<typeof createServer>[1]) {
  const server = createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push(server);
  ports[name] = (server.address() as AddressInfo).port;
}

beforeAll(async () => {
  t = await testMeter();
  handler = createMeterHandler<IncomingMessage>(t.meter, { secretKeys: SECRET, maxBodyBytes: LIMIT });
  await t.meter.upsertSubscription({ userId: "big", planId: "free" });
  await start("toNodeHandler", toNodeHandler(handler));
  const app = express();
  app.use("/meter", meterRouter(t.meter, { secretKeys: SECRET, maxBodyBytes: LIMIT }));
  await start("express", app);
  await start("toWebRequest", (req, res) => {
    void toWebRequest(req, res, req.url, { maxBodyBytes: LIMIT })
      .then((request) => handler(request, req))
      .then((response) => sendWebResponse(res, response));
  });
});
afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  await t.cleanup();
});

/** A valid reservation, padded with JSON whitespace to `size` bytes. */
function padded(size: number): string {
  const body = JSON.stringify({ userId: "big", meterKey: "llm.tokens", amount: 10 });
  return body.slice(0, -1) + " ".repeat(size - body.length) + "}";
}

async function post(adapter: string, size: number): Promise<number> {
  const path = adapter === "express" ? "/meter/v1/reservations" : "/v1/reservations";
  const r = await fetch(`http://127.0.0.1:${ports[adapter]}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${SECRET}`, "content-type": "application/json" },
    body: padded(size),
  });
  await r.arrayBuffer();
  return r.status;
}

describe.each(["toNodeHandler", "express", "toWebRequest"])("through %s, a handler's maxBodyBytes above 1 MiB", (adapter) => {
  test("a 1.5 MB body under a 3 MB limit is served as the Web handler serves it", async () => {
    const web = await handler(
      new Request("http://x/v1/reservations", { method: "POST", headers: { authorization: `Bearer ${SECRET}`, "content-type": "application/json" }, body: padded(1_500_000) }),
    );
    expect(web.status).toBe(200);
    expect(await post(adapter, 1_500_000)).toBe(200);
  });

  test("a body over the limit is still 413", async () => {
    expect(await post(adapter, LIMIT + 10)).toBe(413);
  });
});
