/**
 * `npx tsx tools/handlerCpu.ts`: the CPU one `/v1` request costs the HTTP handler, with no
 * database in the way. A `node:http` client with a keep-alive `Agent` sends `POST
 * /v1/reservations` whose body has an unknown field (secret-key check, body read, JSON parse,
 * shape check, a 400 answer) to `toNodeHandler(createMeterHandler(…))`, then the same requests
 * to a bare `node:http` server that only reads the body and answers the same 400. Client and
 * server share one process, so the difference of the two CPU figures is the handler's own share.
 * Run it in two checkouts to compare them; `N` requests per side (default 20 000).
 */
import { Agent, createServer, request, type RequestListener } from "node:http";
import type { AddressInfo } from "node:net";
import { createMeter, createMeterHandler, toNodeHandler } from "../src/server/index.js";

const SECRET = "sk_tool_0123456789abcdefghijklmnop";
const N = Number(process.env.N ?? 20_000);
const BODY = JSON.stringify({ userId: "u1", meterKey: "tokens", amount: 1000, x: 1 });
const ANSWER = JSON.stringify({
  error: { code: "invalid_request", message: 'Unknown field "x" (known fields: userId, meterKey, amount, model, ttl, metadata).', field: "x" },
});

/** CPU µs per request (client and server) of `N` requests to `listener`, after a warm-up. */
async function cpuPerRequest(listener: RequestListener): Promise<number> {
  const server = createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const agent = new Agent({ keepAlive: true });
  const headers = { authorization: `Bearer ${SECRET}`, "content-type": "application/json", "idempotency-key": "k-1", "content-length": String(BODY.length) };
  const once = () =>
    new Promise<void>((resolve, reject) => {
      const req = request({ port, host: "127.0.0.1", path: "/v1/reservations", method: "POST", agent, headers }, (res) => {
        if (res.statusCode !== 400) reject(new Error(`expected 400, got ${res.statusCode}`));
        res.resume();
        res.on("end", resolve);
      });
      req.on("error", reject);
      req.end(BODY);
    });
  for (let i = 0; i < 3_000; i++) await once();
  const before = process.cpuUsage();
  for (let i = 0; i < N; i++) await once();
  const cpu = process.cpuUsage(before);
  agent.destroy();
  server.closeAllConnections();
  server.close();
  return (cpu.user + cpu.system) / N;
}

// Never connected: the request is refused before the ledger is called.
const meter = createMeter({ database: "postgres://127.0.0.1:1/none", plans: { p: { limits: { tokens: { quota: 1 } } } }, sweepInterval: 0 });
const handler = await cpuPerRequest(toNodeHandler(createMeterHandler(meter, { secretKeys: SECRET })));
const bare = await cpuPerRequest((req, res) => {
  req.resume();
  req.on("end", () => {
    res.writeHead(400, { "cache-control": "no-store", "content-type": "application/json; charset=utf-8", "x-content-type-options": "nosniff", "content-length": Buffer.byteLength(ANSWER) });
    res.end(ANSWER);
  });
});
console.log(`${N} requests: meter handler ${handler.toFixed(1)} µs CPU/request, bare node:http server ${bare.toFixed(1)} µs; the handler's own share ${(handler - bare).toFixed(1)} µs`);
await meter.close();
