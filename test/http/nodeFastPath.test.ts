import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { MeterError } from "../../src/core/errors.js";
import { createMeterHandler, meterErrorResponse, sendWebResponse, toNodeHandler, toWebRequest, type MeterHandler } from "../../src/server/index.js";
import { testMeter, type TestMeter } from "../helpers/meter.js";
import { SECRET } from "./fixtures.js";

// The Node adapters serve a handler from createMeterHandler without Web Request/Response
// objects. These tests send the same raw bytes to three servers over one handler and compare
// the raw bytes of the answers (all but the Date line):
//  - "web": the Web handler as any framework calls it (toWebRequest → handler → sendWebResponse);
//  - "fast": toNodeHandler(handler), the fast path;
//  - "wrapped": toNodeHandler of an app's own wrapper around the handler (the Request path).

let t: TestMeter;
let handler: MeterHandler<IncomingMessage>;
const servers: Record<"web" | "fast" | "wrapped", { server: Server; port: number }> = {} as never;
const failures: unknown[] = [];

async function start(listener: (req: IncomingMessage, res: import("node:http").ServerResponse) => void) {
  const server = createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

beforeAll(async () => {
  t = await testMeter();
  handler = createMeterHandler<IncomingMessage>(t.meter, {
    secretKeys: SECRET,
    maxBodyBytes: 1_024,
    cors: { origin: ["https://app.test"], credentials: true },
    // Reads the Web Request the fast path builds only when asked; "boom" is a bug in the app's identify.
    identify: (request) => {
      const user = request.headers.get("x-user");
      if (user === "boom") throw new Error("identify failed");
      return user;
    },
    onError: (err) => failures.push(err),
  });
  servers.web = await start((req, res) => {
    toWebRequest(req, res)
      .then((request) => handler(request, req))
      .then((response) => sendWebResponse(res, response))
      .catch((err: unknown) => {
        if (err instanceof MeterError) void sendWebResponse(res, meterErrorResponse(err)!);
        else res.destroy();
      });
  });
  servers.fast = await start(toNodeHandler(handler));
  servers.wrapped = await start(toNodeHandler((request: Request, req?: IncomingMessage) => handler(request, req)));
  await t.meter.upsertSubscription({ userId: "alice", planId: "free" });
});
afterAll(async () => {
  for (const { server } of Object.values(servers)) {
    server.closeAllConnections();
    server.close();
  }
  await t.cleanup();
});

/** The raw answer to a raw request on a fresh connection (`Connection: close`), its Date line blanked. */
function exchange(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => (socket.destroy(), reject(new Error("no answer"))), 5_000);
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString("latin1").replace(/\r\nDate: [^\r]*/i, "\r\nDate: -"));
    });
    socket.write(text);
  });
}

/** A raw HTTP/1.1 request. */
function raw(method: string, path: string, headers: Record<string, string> = {}, body?: string): string {
  const lines = [`${method} ${path} HTTP/1.1`, "Host: meter.test", "Connection: close"];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  if (body !== undefined && headers["Transfer-Encoding"] === undefined) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  return `${lines.join("\r\n")}\r\n\r\n${body ?? ""}`;
}

const auth = { Authorization: `Bearer ${SECRET}` };
const jsonAuth = { ...auth, "Content-Type": "application/json" };

/** Sends `text` to the three servers in turn; every answer must be the same bytes. Returns it. */
async function same(text: string): Promise<string> {
  const web = await exchange(servers.web.port, text);
  const fast = await exchange(servers.fast.port, text);
  const wrapped = await exchange(servers.wrapped.port, text);
  expect(fast).toBe(web);
  expect(wrapped).toBe(web);
  return web;
}

const status = (answer: string) => Number(answer.slice(9, 12));

describe("the Node fast path answers byte for byte what the Web handler answers", () => {
  test("success: a usage read, HEAD, a percent-encoded path", async () => {
    expect(status(await same(raw("GET", "/v1/users/alice/usage", auth)))).toBe(200);
    const head = await same(raw("HEAD", "/v1/users/alice/usage", auth));
    expect(status(head)).toBe(200);
    expect(head.endsWith("\r\n\r\n")).toBe(true);
    expect(status(await same(raw("GET", "/%76%31/users/alice/usage", auth)))).toBe(200);
  });

  test("success: a replayed reservation and commit (same Idempotency-Key and body), sent whole or chunked", async () => {
    const reserve = JSON.stringify({ userId: "alice", meterKey: "llm.tokens", amount: 10 });
    const first = await exchange(servers.web.port, raw("POST", "/v1/reservations", { ...jsonAuth, "Idempotency-Key": "fast-r1" }, reserve));
    expect(status(first)).toBe(200);
    const answer = await same(raw("POST", "/v1/reservations", { ...jsonAuth, "Idempotency-Key": "fast-r1" }, reserve));
    expect(answer.slice(answer.indexOf("\r\n\r\n"))).toBe(first.slice(first.indexOf("\r\n\r\n")));
    const chunked = `${Buffer.byteLength(reserve).toString(16)}\r\n${reserve}\r\n0\r\n\r\n`;
    expect(status(await same(raw("POST", "/v1/reservations", { ...jsonAuth, "Idempotency-Key": "fast-r1", "Transfer-Encoding": "chunked" }, chunked)))).toBe(200);

    const { reservationId } = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)) as { reservationId: string };
    const commit = JSON.stringify({ actual: 4 });
    await exchange(servers.web.port, raw("POST", `/v1/reservations/${reservationId}/commit`, { ...jsonAuth, "Idempotency-Key": "fast-c1" }, commit));
    expect(status(await same(raw("POST", `/v1/reservations/${reservationId}/commit`, { ...jsonAuth, "Idempotency-Key": "fast-c1" }, commit)))).toBe(200);
    // A commit with other numbers: 409 conflict.
    expect(status(await same(raw("POST", `/v1/reservations/${reservationId}/commit`, { ...jsonAuth, "Idempotency-Key": "fast-c2" }, JSON.stringify({ actual: 9 }))))).toBe(409);
    // The same key with another body: 409 conflict before anything is written.
    expect(status(await same(raw("POST", "/v1/reservations", { ...jsonAuth, "Idempotency-Key": "fast-r1" }, JSON.stringify({ userId: "alice", meterKey: "llm.tokens", amount: 11 }))))).toBe(409);
  });

  test.each([
    ["401: no key", raw("GET", "/v1/users/alice/usage"), 401],
    ["401: an unknown key", raw("GET", "/v1/users/alice/usage", { Authorization: "Bearer sk_wrong_0123456789abcdefghijklmn" }), 401],
    ["403: a browser on a /v1 route", raw("POST", "/v1/events", { "x-user": "alice", "Content-Type": "application/json" }, "{}"), 403],
    ["404: no route", raw("GET", "/v1/nope", auth), 404],
    ["404: an unknown reservation", raw("POST", "/v1/reservations/r_unknown/release", { ...jsonAuth, "Idempotency-Key": "fast-x" }, "{}"), 404],
    ["405: a wrong method, with Allow", raw("PUT", "/v1/reservations", jsonAuth, "{}"), 405],
    ["204: OPTIONS on a /v1 route", raw("OPTIONS", "/v1/reservations", auth), 204],
    ["400: malformed JSON", raw("POST", "/v1/reservations", jsonAuth, '{"userId": "alice",'), 400],
    ["400: not UTF-8", raw("POST", "/v1/reservations", jsonAuth, "{\"userId\": \"\xff\"}"), 400],
    ["400: an array body", raw("POST", "/v1/reservations", jsonAuth, "[1]"), 400],
    ["400: an unknown field", raw("POST", "/v1/events", jsonAuth, JSON.stringify({ userId: "alice", meterKey: "llm.tokens", amount: 1, extra: 1 })), 400],
    ["400: a bad amount deep in amounts", raw("POST", "/v1/reservations", jsonAuth, JSON.stringify({ userId: "alice", amounts: { "llm.tokens": -1 } })), 400],
    ["400: not application/json", raw("POST", "/v1/reservations", { ...auth, "Content-Type": "text/plain" }, "{}"), 400],
    ["400: a bad Idempotency-Key", raw("POST", "/v1/events", { ...jsonAuth, "Idempotency-Key": "k".repeat(300) }, JSON.stringify({ userId: "alice", meterKey: "llm.tokens", amount: 1 })), 400],
    ["400: a malformed Host", "GET /v1/users/alice/usage HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n", 400],
    ["413: a body over maxBodyBytes", raw("POST", "/v1/reservations", jsonAuth, JSON.stringify({ userId: "alice", model: "m".repeat(2_000) })), 413],
    ["413: a declared length over maxBodyBytes", raw("POST", "/v1/reservations", { ...jsonAuth, "Content-Length": "5000000" }), 413],
  ])("%s", async (_name, text, expected) => {
    expect(status(await same(text))).toBe(expected);
  });

  test("browser routes: identify on the Request built on demand, CORS answers and preflights, 401 and 500", async () => {
    const origin = { Origin: "https://app.test" };
    const ok = await same(raw("GET", "/usage", { ...origin, "x-user": "alice" }));
    expect(status(ok)).toBe(200);
    expect(ok).toMatch(/access-control-allow-origin: https:\/\/app.test/i);
    expect(status(await same(raw("OPTIONS", "/usage", { ...origin, "Access-Control-Request-Method": "GET" })))).toBe(204);
    expect(status(await same(raw("GET", "/usage", origin)))).toBe(401);
    const before = failures.length;
    expect(status(await same(raw("GET", "/usage", { ...origin, "x-user": "boom" })))).toBe(500);
    // onError got the Request, once per server.
    expect(failures.length - before).toBe(3);
  });

  test("a request no Web Request can carry (TRACE) is dropped by every path alike", async () => {
    expect(await same(raw("TRACE", "/v1/users/alice/usage", auth))).toBe("");
  });

  test("a /v1 call on the fast path builds no Web Request or Response; identify's Request is built only when it is asked", async () => {
    const built = { Request: 0, Response: 0 };
    const originals = { Request: globalThis.Request, Response: globalThis.Response };
    for (const name of ["Request", "Response"] as const) {
      globalThis[name] = new Proxy(originals[name], {
        construct: (target, args, newTarget) => (built[name]++, Reflect.construct(target, args, newTarget)),
      }) as never;
    }
    try {
      await exchange(servers.fast.port, raw("GET", "/v1/users/alice/usage", auth));
      await exchange(servers.fast.port, raw("POST", "/v1/reservations", jsonAuth, "[1]"));
      expect(built).toEqual({ Request: 0, Response: 0 });
      await exchange(servers.fast.port, raw("GET", "/usage", { "x-user": "alice" }));
      expect(built).toEqual({ Request: 1, Response: 0 });
      await exchange(servers.web.port, raw("GET", "/v1/users/alice/usage", auth));
      expect(built).toEqual({ Request: 2, Response: 1 });
    } finally {
      globalThis.Request = originals.Request;
      globalThis.Response = originals.Response;
    }
  });
});
