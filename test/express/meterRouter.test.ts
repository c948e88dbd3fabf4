import express5 from "express";
import express4 from "express4";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { LimitReachedError, meterErrorHandler, meterRouter } from "../../src/express/index.js";
import { testMeter, type TestMeter } from "../helpers/meter.js";
import type { RequestHandler } from "express";
import { SECRET, openSse, rawRequest } from "../http/fixtures.js";
import { stripeTest, type StripeTest } from "../stripe/helpers.js";

let t: TestMeter;
beforeAll(async () => {
  t = await testMeter();
  await t.meter.upsertSubscription({ userId: "alice", planId: "free" });
  await t.meter.upsertSubscription({ userId: "bob", planId: "pro" });
});
afterAll(async () => {
  await t.cleanup();
});

type Express = typeof express5;

/** A host app: a fake session (the `x-session` header stands for a cookie), the meter routes, an own metered route. */
function hostApp(express: Express, { jsonFirst = false } = {}) {
  const app = express();
  app.use((req, _res, next) => {
    (req as { user?: { id: string } }).user = req.headers["x-session"] ? { id: String(req.headers["x-session"]) } : undefined;
    next();
  });
  if (jsonFirst) app.use(express.json());
  app.use("/api/meter", meterRouter(t.meter, { identify: (req) => (req as { user?: { id: string } }).user?.id, secretKeys: [SECRET] }));
  app.post("/chat", (req, res, next) => {
    // Written the Express 4 way (next(err)); Express 5 would also catch a rejected promise.
    t.meter
      .reserve(String(req.headers["x-session"]), "llm.tokens", 100_000)
      .then((r) => {
        if (!r.allowed) throw new LimitReachedError(r);
        res.json(r);
      })
      .catch(next);
  });
  app.use(meterErrorHandler());
  return app;
}

describe.each([
  ["Express 5", express5],
  ["Express 4", express4 as unknown as Express],
])("meterRouter in %s", (_name, express) => {
  test("GET /usage answers the session's user, no-store, ignoring ?userId=", async () => {
    const res = await request(hostApp(express)).get("/api/meter/usage?userId=bob").set("x-session", "alice").expect(200);
    expect(res.headers["cache-control"]).toBe("no-store");
    expect(res.body).toMatchObject({ userId: "alice", planId: "free" });
  });

  test("no session is 401 unauthenticated", async () => {
    const res = await request(hostApp(express)).get("/api/meter/usage").expect(401);
    expect(res.body.error.code).toBe("unauthenticated");
  });

  test("a signed-in browser posting usage to /v1 is 403 forbidden", async () => {
    const res = await request(hostApp(express))
      .post("/api/meter/v1/events")
      .set("x-session", "alice")
      .send({ userId: "alice", meterKey: "llm.tokens.refund", amount: 500 })
      .expect(403);
    expect(res.body.error.code).toBe("forbidden");
  });

  test.each([false, true])("server routes reserve and commit with a secret key (express.json() first: %s)", async (jsonFirst) => {
    const app = hostApp(express, { jsonFirst });
    const r = await request(app)
      .post("/api/meter/v1/reservations")
      .set("authorization", `Bearer ${SECRET}`)
      .set("idempotency-key", `exp-${_name}-${jsonFirst}`)
      .send({ userId: "bob", meterKey: "llm.tokens", amount: 300 })
      .expect(200);
    expect(r.body.allowed).toBe(true);
    const again = await request(app)
      .post("/api/meter/v1/reservations")
      .set("authorization", `Bearer ${SECRET}`)
      .set("idempotency-key", `exp-${_name}-${jsonFirst}`)
      .send({ userId: "bob", meterKey: "llm.tokens", amount: 300 })
      .expect(200);
    expect(again.body).toEqual(r.body);
    const c = await request(app)
      .post(`/api/meter/v1/reservations/${r.body.reservationId}/commit`)
      .set("authorization", `Bearer ${SECRET}`)
      .send({ actual: 100 })
      .expect(200);
    expect(c.body).toMatchObject({ committed: 100, refunded: 200 });
  });

  test("a wrong secret key is 401; a missing route is a JSON 404; a wrong method 405", async () => {
    const app = hostApp(express);
    expect((await request(app).get("/api/meter/v1/users/bob/usage").set("authorization", "Bearer wrong").expect(401)).body.error.code).toBe(
      "unauthenticated",
    );
    expect((await request(app).get("/api/meter/nope").set("x-session", "alice").expect(404)).body.error.code).toBe("not_found");
    expect((await request(app).delete("/api/meter/usage").set("x-session", "alice").expect(405)).headers.allow).toBe("GET");
  });

  test("malformed JSON is 400 and an oversize body 413, through real HTTP", async () => {
    const app = hostApp(express);
    const bad = await request(app)
      .post("/api/meter/v1/events")
      .set("authorization", `Bearer ${SECRET}`)
      .set("content-type", "application/json")
      .send('{"userId":')
      .expect(400);
    expect(bad.body.error.code).toBe("invalid_request");
    const big = await request(app)
      .post("/api/meter/v1/events")
      .set("authorization", `Bearer ${SECRET}`)
      .send({ userId: "bob", meterKey: "llm.tokens", amount: 1, metadata: { pad: "x".repeat(100_000) } })
      .expect(413);
    expect(big.body.error.code).toBe("payload_too_large");
  });

  test("a declared Content-Length far over the limit is 413 without the body being read", async () => {
    const res = await request(hostApp(express))
      .post("/api/meter/v1/events")
      .set("authorization", `Bearer ${SECRET}`)
      .set("content-type", "application/json")
      .set("content-length", String(5 * 1024 * 1024))
      .send("{}")
      .ok(() => true);
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe("payload_too_large");
  });

  test("an Idempotency-Key that is not a valid id is 400", async () => {
    const res = await request(hostApp(express))
      .post("/api/meter/v1/events")
      .set("authorization", `Bearer ${SECRET}`)
      .set("idempotency-key", "k".repeat(300))
      .send({ userId: "bob", meterKey: "llm.tokens", amount: 1 })
      .expect(400);
    expect(res.body.error.field).toBe("Idempotency-Key");
  });

  test("a LimitReachedError in the app's own route becomes 402 limit_reached with counter, remaining, required", async () => {
    const res = await request(hostApp(express)).post("/chat").set("x-session", "alice").expect(402);
    expect(res.body.error).toMatchObject({ code: "limit_reached", counter: "tokens", required: 100_000 });
    expect(typeof res.body.error.remaining).toBe("number");
    expect(res.headers["cache-control"]).toBe("no-store");
  });

  test("GET /usage/stream sends the usage at once and after a change, over a real socket", async () => {
    const server: Server = hostApp(express).listen(0);
    await new Promise((r) => server.once("listening", r));
    const { port } = server.address() as AddressInfo;
    const sse = await openSse(`http://127.0.0.1:${port}/api/meter/usage/stream`, { "x-session": "bob" });
    try {
      expect(sse.res.headers.get("content-type")).toMatch(/^text\/event-stream/);
      const first = await sse.next();
      expect(first.userId).toBe("bob");
      await t.meter.track("bob", "llm.tokens", 5);
      const second = await sse.next();
      expect(second.version).toBeGreaterThan(first.version);
      expect(second.counters.find((c) => c.key === "tokens")!.used).toBe(first.counters.find((c) => c.key === "tokens")!.used + 5);
    } finally {
      await sse.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe("browser POSTs when the host app parsed the body first", () => {
  let s: StripeTest;
  beforeAll(async () => {
    s = await stripeTest();
    await s.meter.upsertSubscription({ userId: "alice", planId: "free" });
  });
  afterAll(async () => {
    await s?.cleanup();
  });
  const sessions = () => s.standIn.requests.filter((r) => r.path === "/v1/checkout/sessions").length;
  const app = (parser: (e: Express) => RequestHandler) => {
    const a = express5();
    a.use(parser(express5));
    a.use("/api/meter", meterRouter(s.meter, { identify: (req) => (typeof req.headers["x-session"] === "string" ? req.headers["x-session"] : null) }));
    return a;
  };

  // A cross-site form can send these content types without a CORS preflight, with the victim's cookies.
  test.each([
    ["express.urlencoded()", "application/x-www-form-urlencoded", "packId=starter", (e: Express) => e.urlencoded({ extended: false })],
    ['express.json({ type: "*/*" })', "text/plain", '{"packId":"starter"}', (e: Express) => e.json({ type: "*/*" })],
    ["express.text()", "text/plain", '{"packId":"starter"}', (e: Express) => e.text()],
  ])("with %s first, a %s POST to /checkout is refused and creates no session", async (_name, type, payload, parser) => {
    const before = sessions();
    const res = await request(app(parser)).post("/api/meter/checkout").set("x-session", "alice").set("content-type", type).send(payload).expect(400);
    expect(res.body.error).toMatchObject({ code: "invalid_request", field: "content-type" });
    expect(sessions()).toBe(before);
  });

  test("with express.json() first, a JSON POST to /checkout still works", async () => {
    const res = await request(app((e) => e.json()))
      .post("/api/meter/checkout")
      .set("x-session", "alice")
      .send({ packId: "starter" })
      .expect(200);
    expect(res.body.url).toMatch(/^http/);
  });
});

describe("a malformed Host header", () => {
  // Clients (supertest, fetch) normalise Host, so these go over a raw socket.
  test.each(["a b", "[", "%", "a/b", "[::1"])("Host: %s is 400 invalid_request JSON, not a dropped connection or an HTML 500", async (host) => {
    const server: Server = hostApp(express5).listen(0);
    await new Promise((r) => server.once("listening", r));
    try {
      const { port } = server.address() as AddressInfo;
      const answer = await rawRequest(port, `GET /api/meter/usage HTTP/1.1\r\nHost: ${host}\r\nx-session: alice\r\nConnection: close\r\n\r\n`);
      expect(answer.status).toBe(400);
      expect(answer.headers["content-type"]).toMatch(/^application\/json/);
      expect(JSON.parse(answer.body)).toMatchObject({ error: { code: "invalid_request" } });
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
