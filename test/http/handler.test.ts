import { afterAll, beforeAll, describe, expect, test, vi } from "vitest";
import { LimitReachedError } from "../../src/core/errors.js";
import type { Pack } from "../../src/core/types.js";
import { createMeterHandler, meterErrorResponse, type MeterHandler } from "../../src/server/index.js";
import { testMeter, type TestMeter } from "../helpers/meter.js";
import { OLD_SECRET, SECRET, TOKEN_SECRET, listen, rawRequest } from "./fixtures.js";
import { internalsOf } from "../../src/server/internals.js";

// The Web handler called directly, the way a Next.js route handler or Hono would call it.
let t: TestMeter;
let handler: MeterHandler<{ user?: string }>;
const errors: unknown[] = [];
const BASE = "http://app.test/api/meter";

beforeAll(async () => {
  t = await testMeter({ browserTokenSecret: TOKEN_SECRET });
  handler = createMeterHandler<{ user?: string }>(t.meter, {
    basePath: "/api/meter",
    secretKeys: [SECRET],
    identify: (_request, ctx) => ctx?.user,
    onError: (err) => errors.push(err),
  });
  await t.meter.upsertSubscription({ userId: "alice", planId: "free" });
  await t.meter.upsertSubscription({ userId: "bob", planId: "pro" });
});
afterAll(async () => {
  await t.cleanup();
});

const server = (path: string, init: RequestInit & { key?: string } = {}) => {
  const headers = new Headers(init.headers);
  if (!headers.has("authorization")) headers.set("authorization", `Bearer ${SECRET}`);
  if (init.body !== undefined && !headers.has("content-type")) headers.set("content-type", "application/json");
  if (init.key) headers.set("idempotency-key", init.key);
  return handler(new Request(BASE + path, { ...init, headers }));
};
const asUser = (user: string | undefined, path: string, init: RequestInit = {}) => handler(new Request(BASE + path, init), { user });
const body = async (res: Response) => (await res.json()) as Record<string, any>;

/** Rows the ledger and the idempotency claims hold: "nothing written" means this does not change. */
async function writes(): Promise<number> {
  const { rows } = await internalsOf(t.meter).pool.query<{ n: string }>(
    `SELECT (SELECT count(*) FROM meterkit.entries) + (SELECT count(*) FROM meterkit.http_idempotency)
          + (SELECT count(*) FROM meterkit.idempotency) AS n`,
  );
  return Number(rows[0]!.n);
}

describe("routing and bad requests", () => {
  test("an unknown route is 404 not_found with a JSON error, not a 500", async () => {
    const res = await asUser("alice", "/nope");
    expect(res.status).toBe(404);
    expect((await body(res)).error).toMatchObject({ code: "not_found" });
  });

  test("a path outside basePath is not routed", async () => {
    const res = await handler(new Request("http://app.test/usage"), { user: "alice" });
    expect(res.status).toBe(404);
  });

  test("a wrong method is 405 method_not_allowed with an Allow header", async () => {
    const res = await asUser("alice", "/usage", { method: "DELETE" });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET");
    expect((await body(res)).error.code).toBe("method_not_allowed");
    const put = await server("/v1/reservations", { method: "PUT", body: "{}" });
    expect(put.status).toBe(405);
  });

  test("malformed JSON is 400 invalid_request and writes nothing", async () => {
    const before = await writes();
    const res = await server("/v1/reservations", { method: "POST", body: '{"userId": "alice",', key: "k-malformed" });
    expect(res.status).toBe(400);
    expect((await body(res)).error).toMatchObject({ code: "invalid_request", message: "The body is not valid JSON." });
    expect(await writes()).toBe(before);
  });

  test.each([
    ["an array body", "[1,2]", undefined],
    ["a wrong type", '{"userId":"alice","meterKey":"llm.tokens","amount":"100"}', "amount"],
    ["a missing field", '{"meterKey":"llm.tokens","amount":100}', "userId"],
    ["an unknown field", '{"userId":"alice","meterKey":"llm.tokens","amount":100,"ammount":1}', "ammount"],
    ["a fractional amount", '{"userId":"alice","meterKey":"llm.tokens","amount":1.5}', "amount"],
    ["a negative amount", '{"userId":"alice","meterKey":"llm.tokens","amount":-5}', "amount"],
  ])("%s is 400 invalid_request naming the field, and writes nothing", async (_name, json, field) => {
    const before = await writes();
    const res = await server("/v1/reservations", { method: "POST", body: json, key: "k-" + _name });
    expect(res.status).toBe(400);
    const err = (await body(res)).error;
    expect(err.code).toBe("invalid_request");
    if (field) expect(err.field).toBe(field);
    expect(await writes()).toBe(before);
  });

  test("a JSON body without Content-Type application/json is refused", async () => {
    const res = await server("/v1/events", { method: "POST", body: '{"userId":"alice","meterKey":"llm.tokens","amount":1}', headers: { "content-type": "text/plain" } });
    expect(res.status).toBe(400);
    expect((await body(res)).error.field).toBe("content-type");
  });

  test("a body over the limit is 413 payload_too_large, by Content-Length or while streaming", async () => {
    const before = await writes();
    const big = JSON.stringify({ userId: "alice", meterKey: "llm.tokens", amount: 1, metadata: { x: "y".repeat(70_000) } });
    const declared = await server("/v1/reservations", { method: "POST", body: big });
    expect(declared.status).toBe(413);
    expect((await body(declared)).error.code).toBe("payload_too_large");
    // No Content-Length: a stream that only turns out too large while it is read.
    const chunks = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 100; i++) c.enqueue(new TextEncoder().encode("x".repeat(1000)));
        c.close();
      },
    });
    const streamed = await handler(
      new Request(BASE + "/v1/events", {
        method: "POST",
        body: chunks,
        duplex: "half",
        headers: { authorization: `Bearer ${SECRET}`, "content-type": "application/json" },
      } as RequestInit),
    );
    expect(streamed.status).toBe(413);
    expect(await writes()).toBe(before);
  });

  test("a malformed percent-encoding in the path is 400, not a 500", async () => {
    const res = await server("/v1/users/%E0%A4%A/usage");
    expect(res.status).toBe(400);
  });

  test("an error inside identify is a generic 500 internal: no message, no stack, reported to onError", async () => {
    const failing = createMeterHandler(t.meter, {
      identify: () => {
        throw new Error("session store exploded at /srv/app/secret.js:12");
      },
      onError: (err) => errors.push(err),
    });
    const before = errors.length;
    const res = await failing(new Request("http://app.test/usage"));
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ error: { code: "internal", message: "Internal error." } });
    expect(text).not.toMatch(/secret\.js|at /);
    expect(errors.length).toBe(before + 1);
  });
});

describe("browser routes", () => {
  test("GET /usage answers the identified user's Usage with Cache-Control: no-store", async () => {
    const res = await asUser("alice", "/usage");
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const usage = await body(res);
    expect(usage).toMatchObject({ userId: "alice", planId: "free" });
    expect(usage.counters[0]).toMatchObject({ key: "tokens", quota: 1000 });
  });

  test("no identity is 401 unauthenticated", async () => {
    const res = await asUser(undefined, "/usage");
    expect(res.status).toBe(401);
    expect((await body(res)).error.code).toBe("unauthenticated");
  });

  test("a browser cannot read another user's usage through ?userId=, a header or a body", async () => {
    const res = await asUser("alice", "/usage?userId=bob&user=bob", { headers: { "x-user-id": "bob", "x-meterkit-user": "bob" } });
    expect((await body(res)).userId).toBe("alice");
    const anon = await asUser(undefined, "/usage?userId=bob", { headers: { "x-user-id": "bob" } });
    expect(anon.status).toBe(401);
  });

  test("a signed-in browser cannot reserve, track or grant: the /v1 routes answer 403 forbidden and write nothing", async () => {
    const before = await writes();
    for (const [path, json] of [
      ["/v1/reservations", { userId: "alice", meterKey: "llm.tokens", amount: 1 }],
      ["/v1/events", { userId: "alice", meterKey: "llm.tokens.refund", amount: 100 }],
      ["/v1/grants", { userId: "alice", counterKey: "tokens", amount: 1_000_000 }],
    ] as const) {
      const res = await asUser("alice", path, { method: "POST", body: JSON.stringify(json), headers: { "content-type": "application/json" } });
      expect(res.status).toBe(403);
      expect((await body(res)).error.code).toBe("forbidden");
    }
    expect(await writes()).toBe(before);
  });

  test("there is no browser route that writes usage: POST /usage is 405, POST /track is 404", async () => {
    expect((await asUser("alice", "/usage", { method: "POST" })).status).toBe(405);
    expect((await asUser("alice", "/track", { method: "POST" })).status).toBe(404);
    expect((await asUser("alice", "/reserve", { method: "POST" })).status).toBe(404);
  });

  test("without billing, /packs and /checkout answer a clear not_found", async () => {
    const packs = await asUser("alice", "/packs");
    expect(packs.status).toBe(404);
    expect((await body(packs)).error.message).toMatch(/Billing is not configured/);
    const checkout = await asUser("alice", "/checkout", {
      method: "POST",
      body: '{"packId":"p"}',
      headers: { "content-type": "application/json" },
    });
    expect(checkout.status).toBe(404);
    const hook = await handler(new Request(BASE + "/stripe/webhook", { method: "POST", body: "{}" }));
    expect(hook.status).toBe(404);
  });

  test("with billing, /packs lists the packs and /checkout buys for the identified user, never the body's userId", async () => {
    const pack: Pack = { id: "p1", label: "200k tokens", counter: "tokens", amount: 200_000, price: { amount: 500, currency: "usd" } };
    const checkout = vi.fn(async () => ({ url: "https://checkout.test/s/1" }));
    const webhook = vi.fn(async () => ({ received: true as const }));
    const internals = internalsOf(t.meter);
    internals.billing = { packs: () => [pack], checkout, webhook };
    try {
      const packs = await asUser("alice", "/packs");
      expect(await body(packs)).toEqual({ packs: [pack] });
      const res = await asUser("alice", "/checkout", {
        method: "POST",
        body: JSON.stringify({ packId: "p1", userId: "bob", successUrl: "https://app.test/ok" }),
        headers: { "content-type": "application/json" },
      });
      expect(await body(res)).toEqual({ url: "https://checkout.test/s/1" });
      expect(checkout).toHaveBeenCalledWith("alice", { packId: "p1", successUrl: "https://app.test/ok", cancelUrl: undefined });
      // A cross-site form can post text/plain without a preflight: refused before billing sees it.
      const form = await asUser("alice", "/checkout", { method: "POST", body: '{"packId":"p1"}', headers: { "content-type": "text/plain" } });
      expect(form.status).toBe(400);
      expect(checkout).toHaveBeenCalledTimes(1);
      // The webhook gets the raw bytes, untouched, and the signature header; no identity needed.
      const raw = '{"id": "evt_1",  "type":"checkout.session.completed"}';
      const hook = await handler(new Request(BASE + "/stripe/webhook", { method: "POST", body: raw, headers: { "stripe-signature": "t=1,v1=abc" } }));
      expect(hook.status).toBe(200);
      const [bytes, sig] = webhook.mock.calls[0] as unknown as [Uint8Array, string];
      expect(new TextDecoder().decode(bytes)).toBe(raw);
      expect(sig).toBe("t=1,v1=abc");
    } finally {
      delete internals.billing;
    }
  });
});

describe("browser tokens", () => {
  const withToken = (token: string, path = "/usage") => handler(new Request(BASE + path, { headers: { authorization: `Bearer ${token}` } }));

  test("a token from meter.browserToken() authenticates its user on the browser routes, without identify", async () => {
    const res = await withToken(t.meter.browserToken("bob", { ttl: 60_000 }));
    expect(res.status).toBe(200);
    expect((await body(res)).userId).toBe("bob");
  });

  test("a token wins over identify and cannot be bent to another user by a query", async () => {
    const res = await handler(
      new Request(BASE + "/usage?userId=alice", { headers: { authorization: `Bearer ${t.meter.browserToken("bob")}` } }),
      { user: "alice" },
    );
    expect((await body(res)).userId).toBe("bob");
  });

  test("an expired, tampered or foreign token is 401", async () => {
    const short = t.meter.browserToken("bob", { ttl: 1 });
    await new Promise((r) => setTimeout(r, 5));
    expect((await withToken(short)).status).toBe(401);
    const good = t.meter.browserToken("bob");
    const [prefix, payload, sig] = good.split(".");
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, "base64url").toString()), sub: "alice" })).toString("base64url");
    expect((await withToken(`${prefix}.${forged}.${sig}`)).status).toBe(401);
    expect((await withToken(good.slice(0, -2))).status).toBe(401);
    const other = await testMeter({ browserTokenSecret: TOKEN_SECRET, schema: "other_meter" });
    try {
      // Same secret, another meter: the token is bound to its meter.
      expect((await withToken(other.meter.browserToken("bob"))).status).toBe(401);
    } finally {
      await other.cleanup();
    }
  });

  test("a browser token cannot call the /v1 routes", async () => {
    const res = await handler(
      new Request(BASE + "/v1/users/bob/usage", { headers: { authorization: `Bearer ${t.meter.browserToken("bob")}` } }),
    );
    expect(res.status).toBe(403);
  });

  test("a token lives at most 30 minutes", () => {
    expect(() => t.meter.browserToken("bob", { ttl: 30 * 60_000 + 1 })).toThrow(/at most 1800000/);
    expect(() => t.meter.browserToken("bob", { ttl: 30 * 60_000 })).not.toThrow();
  });
});

describe("CORS", () => {
  test("is off by default: no Access-Control headers, even on a preflight", async () => {
    const res = await asUser("alice", "/usage", { headers: { origin: "https://evil.test" } });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    const pre = await handler(new Request(BASE + "/usage", { method: "OPTIONS", headers: { origin: "https://evil.test", "access-control-request-method": "GET" } }));
    expect(pre.headers.get("access-control-allow-origin")).toBeNull();
  });

  test("when configured, allows the listed origins on the browser routes only", async () => {
    const h = createMeterHandler(t.meter, {
      secretKeys: SECRET,
      identify: () => "alice",
      cors: { origin: ["https://app.test"], credentials: true },
    });
    const pre = await h(new Request("http://x/usage", { method: "OPTIONS", headers: { origin: "https://app.test", "access-control-request-method": "GET" } }));
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBe("https://app.test");
    expect(pre.headers.get("access-control-allow-headers")).toMatch(/Authorization/);
    expect(pre.headers.get("access-control-allow-credentials")).toBe("true");
    const get = await h(new Request("http://x/usage", { headers: { origin: "https://app.test" } }));
    expect(get.headers.get("access-control-allow-origin")).toBe("https://app.test");
    const denied = await h(new Request("http://x/usage", { headers: { origin: "https://evil.test" } }));
    expect(denied.headers.get("access-control-allow-origin")).toBeNull();
    const v1 = await h(new Request("http://x/v1/users/alice/usage", { headers: { origin: "https://app.test", authorization: `Bearer ${SECRET}` } }));
    expect(v1.status).toBe(200);
    expect(v1.headers.get("access-control-allow-origin")).toBeNull();
  });

  test('"*" with credentials is refused at setup', () => {
    expect(() => createMeterHandler(t.meter, { cors: { origin: "*", credentials: true } })).toThrow(/credentials/);
  });
});

describe("server routes", () => {
  test("a missing, wrong or retired secret key is 401 unauthenticated", async () => {
    const rotated = createMeterHandler(t.meter, { secretKeys: [SECRET] });
    for (const auth of [undefined, "Bearer nope", `Bearer ${OLD_SECRET}`, `Basic ${SECRET}`, SECRET]) {
      const headers: Record<string, string> = auth ? { authorization: auth } : {};
      const res = await rotated(new Request("http://x/v1/users/alice/usage", { headers }));
      expect(res.status).toBe(401);
      expect((await body(res)).error.code).toBe("unauthenticated");
    }
  });

  test("several keys are accepted at once, for rotation", async () => {
    const rotating = createMeterHandler(t.meter, { secretKeys: [SECRET, OLD_SECRET] });
    for (const key of [SECRET, OLD_SECRET]) {
      const res = await rotating(new Request("http://x/v1/users/alice/usage", { headers: { authorization: `Bearer ${key}` } }));
      expect(res.status).toBe(200);
    }
  });

  test("without secretKeys every /v1 route is 401; short keys are refused at setup", async () => {
    const none = createMeterHandler(t.meter, {});
    expect((await none(new Request("http://x/v1/users/alice/usage", { headers: { authorization: `Bearer ${SECRET}` } }))).status).toBe(401);
    expect(() => createMeterHandler(t.meter, { secretKeys: ["short"] })).toThrow(/at least 24/);
  });

  test("reserve, commit and usage work over the Web handler", async () => {
    const r = await body(await server("/v1/reservations", { method: "POST", body: JSON.stringify({ userId: "bob", meterKey: "llm.tokens", amount: 500, model: "gpt-4o", metadata: { chat: "c1" } }) }));
    expect(r).toMatchObject({ allowed: true, amount: 500, counter: "tokens" });
    const c = await body(await server(`/v1/reservations/${r.reservationId}/commit`, { method: "POST", body: JSON.stringify({ actual: 120 }) }));
    expect(c).toMatchObject({ status: "committed", held: 500, committed: 120, refunded: 380 });
    const u = await body(await server("/v1/users/bob/usage"));
    expect(u.counters.find((x: { key: string }) => x.key === "tokens")).toMatchObject({ used: 120, held: 0 });
  });

  test("commit and release accept an empty body", async () => {
    const r = await t.meter.reserve("bob", "llm.tokens", 10);
    if (!r.allowed) throw new Error("denied");
    const res = await server(`/v1/reservations/${r.reservationId}/release`, { method: "POST" });
    expect(await body(res)).toMatchObject({ status: "released", released: 10 });
  });

  test("a reservation the balance cannot cover is a normal 200 { allowed: false }", async () => {
    const res = await server("/v1/reservations", { method: "POST", body: JSON.stringify({ userId: "alice", meterKey: "llm.tokens", amount: 5_000 }) });
    expect(res.status).toBe(200);
    expect(await body(res)).toMatchObject({ allowed: false, reason: "limit_reached", counter: "tokens", required: 5_000 });
  });

  test("the same Idempotency-Key and body answer the first response again and write once", async () => {
    const json = JSON.stringify({ userId: "bob", meterKey: "llm.tokens", amount: 7 });
    const first = await body(await server("/v1/reservations", { method: "POST", body: json, key: "idem-1" }));
    const before = await writes();
    const again = await body(await server("/v1/reservations", { method: "POST", body: json, key: "idem-1" }));
    expect(again).toEqual(first);
    expect(await writes()).toBe(before);
    // Same for a commit: one charge however often it is retried.
    const commit = JSON.stringify({ actual: 3 });
    const c1 = await body(await server(`/v1/reservations/${first.reservationId}/commit`, { method: "POST", body: commit, key: "idem-c" }));
    const c2 = await body(await server(`/v1/reservations/${first.reservationId}/commit`, { method: "POST", body: commit, key: "idem-c" }));
    expect(c2).toEqual(c1);
  });

  test("the same Idempotency-Key with another body, user or route is 409 conflict and writes nothing", async () => {
    await server("/v1/grants", { method: "POST", body: JSON.stringify({ userId: "bob", counterKey: "tokens", amount: 50 }), key: "idem-2" });
    const before = await writes();
    for (const [path, json] of [
      ["/v1/grants", { userId: "bob", counterKey: "tokens", amount: 51 }],
      ["/v1/grants", { userId: "alice", counterKey: "tokens", amount: 50 }],
      ["/v1/events", { userId: "bob", meterKey: "tokens", amount: 50 }],
    ] as const) {
      const res = await server(path, { method: "POST", body: JSON.stringify(json), key: "idem-2" });
      expect(res.status).toBe(409);
      expect((await body(res)).error).toMatchObject({ code: "conflict", idempotencyKey: "idem-2" });
    }
    expect(await writes()).toBe(before);
  });

  test("a key whose request failed can be reused once the request is corrected", async () => {
    const bad = await server("/v1/events", { method: "POST", body: JSON.stringify({ userId: "bob", meterKey: "no.such", amount: 1 }), key: "idem-3" });
    expect(bad.status).toBe(404);
    const good = await server("/v1/events", { method: "POST", body: JSON.stringify({ userId: "bob", meterKey: "llm.tokens", amount: 1 }), key: "idem-3" });
    expect(good.status).toBe(200);
  });

  test("events, grants, subscriptions and usage map onto the ledger", async () => {
    const sub = await body(
      await server("/v1/subscriptions/carol", { method: "PUT", body: JSON.stringify({ planId: "free", customLimits: { tokens: { quota: 300 } } }) }),
    );
    expect(sub).toMatchObject({ userId: "carol", planId: "free", customLimits: { tokens: { quota: 300 } } });
    const g = await body(await server("/v1/grants", { method: "POST", body: JSON.stringify({ userId: "carol", counterKey: "tokens", amount: 100, source: "promo", expiresAt: "2999-01-01T00:00:00.000Z" }) }));
    expect(g).toMatchObject({ amount: 100, counter: "tokens", remaining: 400 });
    const e = await body(await server("/v1/events", { method: "POST", body: JSON.stringify({ userId: "carol", meterKey: "llm.tokens", amount: 40 }) }));
    expect(e).toMatchObject({ amount: 40, remaining: 360 });
    const refund = await body(await server("/v1/events", { method: "POST", body: JSON.stringify({ userId: "carol", meterKey: "llm.tokens.refund", amount: 10 }) }));
    expect(refund).toMatchObject({ amount: -10, remaining: 370 });
    expect(await body(await server("/v1/users/carol/usage"))).toEqual(await t.meter.usage("carol"));
  });

  test("ledger errors keep their codes: unknown reservation 404, committing a released hold 409, unknown user 404", async () => {
    expect((await server("/v1/reservations/rsv_nope/commit", { method: "POST" })).status).toBe(404);
    const r = await t.meter.reserve("bob", "llm.tokens", 5);
    if (!r.allowed) throw new Error("denied");
    await t.meter.release(r.reservationId);
    const res = await server(`/v1/reservations/${r.reservationId}/commit`, { method: "POST", body: "{}" });
    expect(res.status).toBe(409);
    expect((await server("/v1/users/nobody/usage")).status).toBe(404);
  });

  test("a charge a strict counter cannot cover is 402 limit_reached with counter, remaining and required", async () => {
    await t.meter.upsertSubscription({ userId: "dave", planId: "pro" });
    const res = await server("/v1/events", { method: "POST", body: JSON.stringify({ userId: "dave", meterKey: "images", amount: 11 }) });
    expect(res.status).toBe(402);
    expect((await body(res)).error).toMatchObject({ code: "limit_reached", counter: "images", remaining: 10, required: 11 });
  });
});

test("meterErrorResponse turns a LimitReachedError in the app's own route into the 402 answer", async () => {
  const res = meterErrorResponse(new LimitReachedError({ counter: "tokens", remaining: 3, required: 500 }))!;
  expect(res.status).toBe(402);
  expect((await body(res)).error).toMatchObject({ code: "limit_reached", counter: "tokens", remaining: 3, required: 500 });
  expect(meterErrorResponse(new Error("x"))).toBeNull();
});

describe("edges of the wire", () => {
  test.each(["a b", "[", "%", "a/b", "[::1"])("Host: %s through toNodeHandler is 400 invalid_request JSON, not a dropped connection", async (host) => {
    const srv = await listen(((req: Request) => handler(req, { user: "alice" })) as (req: Request) => Promise<Response>);
    try {
      const port = Number(new URL(srv.url).port);
      const answer = await rawRequest(port, `GET /api/meter/usage HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      expect(answer.status).toBe(400);
      expect(answer.headers["content-type"]).toMatch(/^application\/json/);
      expect(JSON.parse(answer.body)).toMatchObject({ error: { code: "invalid_request" } });
    } finally {
      await srv.close();
    }
  });

  test("a /v1 path reached through percent-encodings is a server route: its answers carry no CORS headers", async () => {
    const h = createMeterHandler(t.meter, { secretKeys: SECRET, identify: () => "alice", cors: { origin: ["https://app.test"], credentials: true } });
    const origin = { origin: "https://app.test" };
    for (const path of ["/%76%31/users/alice/usage", "/%76%31/reservations", "/v%31/nope", "/%56%31/x", "/%2F/v1/users/alice/usage", "/stripe%2Fwebhook", "/%73tripe/webhook"]) {
      for (const init of [{ headers: origin }, { method: "POST", headers: { ...origin, "content-type": "application/json" }, body: "{}" }]) {
        const res = await h(new Request("http://x" + path, init));
        expect(res.status, path).toBeGreaterThanOrEqual(400);
        expect(res.headers.get("access-control-allow-origin"), `${init.method ?? "GET"} ${path}`).toBeNull();
      }
    }
    // The browser routes keep theirs, encoded or not.
    const usage = await h(new Request("http://x/%75sage", { headers: origin }));
    expect(usage.status).toBe(200);
    expect(usage.headers.get("access-control-allow-origin")).toBe("https://app.test");
  });

  test("a browser token is accepted in exactly one spelling: no padding, no other base64 alphabet, nothing trailing", async () => {
    const good = t.meter.browserToken("bob");
    const [prefix, payload, sig] = good.split(".") as [string, string, string];
    expect((await handler(new Request(BASE + "/usage", { headers: { authorization: `Bearer ${good}` } }))).status).toBe(200);
    const std = (s: string) => s.replace(/-/g, "+").replace(/_/g, "/");
    const pad = (s: string) => s + "=".repeat((4 - (s.length % 4)) % 4);
    const variants = [
      `${prefix}.${payload}.${pad(sig)}=`,
      `${prefix}.${payload}.${sig}=`,
      `${prefix}.${pad(payload)}=.${sig}`,
      `${prefix}.${payload}=.${sig}`,
      `${prefix}.${std(payload)}.${std(sig)}`,
      `${prefix}.${payload}.${sig}A`,
      `${prefix}.${payload}.${sig}!`,
      `${prefix}.${payload}!.${sig}`,
      `${prefix}.${payload}.${sig.slice(0, -1)}${String.fromCharCode(sig.charCodeAt(sig.length - 1) ^ 1)}`,
    ].filter((v) => v !== good);
    for (const v of variants) {
      const res = await handler(new Request(BASE + "/usage", { headers: { authorization: `Bearer ${v}` } }));
      expect(res.status, JSON.stringify(v)).toBe(401);
    }
  });

  test("HEAD on a GET route answers like GET, without a body", async () => {
    const get = await asUser("alice", "/usage");
    const head = await asUser("alice", "/usage", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-type")).toBe(get.headers.get("content-type"));
    expect(head.headers.get("cache-control")).toBe("no-store");
    expect(await head.text()).toBe("");
    const v1 = await server("/v1/users/alice/usage", { method: "HEAD" });
    expect(v1.status).toBe(200);
    expect(await v1.text()).toBe("");
    // Errors too: HEAD without a session is 401 like GET.
    expect((await asUser(undefined, "/usage", { method: "HEAD" })).status).toBe(401);
    // HEAD on a stream route does not open a stream.
    const stream = await asUser("alice", "/usage/stream", { method: "HEAD" });
    expect(stream.status).toBe(200);
    expect(stream.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(await stream.text()).toBe("");
    // POST-only routes still say 405.
    expect((await server("/v1/reservations", { method: "HEAD" })).status).toBe(405);
  });

  test("HEAD through toNodeHandler sends headers and no body", async () => {
    const srv = await listen(((req: Request) => handler(req, { user: "alice" })) as (req: Request) => Promise<Response>);
    try {
      const res = await fetch(srv.url + "/api/meter/usage", { method: "HEAD" });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("");
    } finally {
      await srv.close();
    }
  });
});
