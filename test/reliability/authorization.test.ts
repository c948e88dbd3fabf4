import { request as httpRequest } from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { createMeterHandler, type MeterHandler } from "../../src/server/index.js";
import { BROWSER_TOKEN_PREFIX, signBrowserToken } from "../../src/server/http/browserToken.js";
import { testMeter, type TestMeter } from "../helpers/meter.js";
import { listen, OLD_SECRET, openSse, SECRET, TOKEN_SECRET, waitFor } from "../http/fixtures.js";
import { countFailures, recordFigures } from "./harness/report.js";
import { writeSnapshot } from "./harness/snapshot.js";
import { internalsOf } from "../../src/server/internals.js";

// Authorization under attack: a signed-in user after another user's balance through every
// route and parameter; server routes without, with wrong and with revoked keys; oversize
// bodies; floods of streams from one user.
const failures = countFailures(afterEach);
let t: TestMeter;
let handler: MeterHandler<{ user?: string }>;
let rotated: MeterHandler<{ user?: string }>;
let srv: Awaited<ReturnType<typeof listen>>;
const MAX_STREAMS = 3;
const BOB_MARK = "4242"; // bob's usage: must never appear in an answer to alice
let attacks = 0;

beforeAll(async () => {
  t = await testMeter({ browserTokenSecret: TOKEN_SECRET });
  const common = { identify: (_r: Request, ctx: { user?: string } | undefined) => ctx?.user, live: { maxStreamsPerUser: MAX_STREAMS, heartbeat: 60_000 }, onError: () => {} };
  handler = createMeterHandler<{ user?: string }>(t.meter, { ...common, secretKeys: [SECRET, OLD_SECRET] });
  // After a rotation OLD_SECRET is revoked.
  rotated = createMeterHandler<{ user?: string }>(t.meter, { ...common, secretKeys: [SECRET] });
  await t.meter.upsertSubscription({ userId: "alice", planId: "free" });
  await t.meter.upsertSubscription({ userId: "bob", planId: "pro" });
  await t.meter.track("bob", "llm.tokens", Number(BOB_MARK));
  srv = await listen(((req: Request) => handler(req, { user: req.headers.get("x-test-user") ?? undefined })) as (req: Request) => Promise<Response>);
});
afterAll(async () => {
  recordFigures("authorization attacks", { operations: attacks, violations: failures.n });
  await srv.close();
  await t.cleanup();
});

const asAlice = (path: string, init: RequestInit = {}, h: MeterHandler<{ user?: string }> = handler) => {
  attacks++;
  return h(new Request("http://app.test" + path, init), { user: "alice" });
};

describe("a signed-in user cannot read another user's balance", () => {
  const ATTEMPTS: Array<[string, RequestInit]> = [
    ["/usage?userId=bob", {}],
    ["/usage?user=bob&user_id=bob&id=bob&uid=bob", {}],
    ["/usage?userId[]=bob&userId=bob", {}],
    ["/usage", { headers: { "x-user-id": "bob", "x-meterkit-user": "bob", "x-forwarded-user": "bob", "x-remote-user": "bob" } }],
    ["/usage", { headers: { cookie: "userId=bob; meterkit_user=bob" } }],
    ["/usage", { headers: { authorization: "Bearer bob" } }],
    ["/usage", { headers: { authorization: `Bearer ${SECRET}` } }],
    ["/usage/", {}],
    ["//usage", {}],
  ];

  test.each(ATTEMPTS)("GET %s answers alice's own usage and nothing of bob's", async (path, init) => {
    const res = await asAlice(path, init);
    const text = await res.text();
    expect(text).not.toContain("bob");
    expect(text).not.toContain(BOB_MARK);
    if (res.status === 200) expect(JSON.parse(text)).toMatchObject({ userId: "alice", planId: "free" });
  });

  test.each(ATTEMPTS.filter(([p]) => p.startsWith("/usage?") || p === "/usage"))("the stream %s carries alice's usage only", async (path, init) => {
    const s = await openSse(srv.url + path.replace("/usage", "/usage/stream"), { ...(init.headers as Record<string, string>), "x-test-user": "alice" });
    attacks++;
    try {
      const first = await s.next();
      expect(first.userId).toBe("alice");
      expect(JSON.stringify(s.raw)).not.toContain(BOB_MARK);
    } finally {
      await s.close();
    }
  });

  test.each([
    ["/usage/bob", 404],
    ["/usage/stream/bob", 404],
    ["/users/bob/usage", 404],
    ["/usage/..%2Fv1%2Fusers%2Fbob%2Fusage", 404],
    ["/v1%2Fusers%2Fbob%2Fusage", 404],
    ["/v1/users/bob/usage", 403],
    ["/v1/users/bob/usage?userId=alice", 403],
  ])("%s is %i and leaks nothing", async (path, status) => {
    const res = await asAlice(path);
    expect(res.status).toBe(status);
    const text = await res.text();
    expect(text).not.toContain(BOB_MARK);
  });

  test("a browser token is bound to its user, its meter, its secret and its expiry", async () => {
    const bob = t.meter.browserToken("bob");
    const prefix = BROWSER_TOKEN_PREFIX;
    const [payload, sig] = bob.slice(prefix.length).split(".");
    const claims = JSON.parse(Buffer.from(payload!, "base64url").toString()) as Record<string, unknown>;
    const forged = (c: Record<string, unknown>) => `${prefix}${Buffer.from(JSON.stringify(c)).toString("base64url")}.${sig}`;
    const cases: Array<[string, string]> = [
      ["bob's token with the user changed to alice", forged({ ...claims, sub: "alice" })],
      ["an extended expiry", forged({ ...claims, exp: (claims.exp as number) + 3_600_000 })],
      ["an expired token", signBrowserToken([TOKEN_SECRET], "meterkit", "bob", {}, Date.now() - 31 * 60_000)],
      ["another secret", signBrowserToken(["another_secret_0123456789abcdefghijklmnop"], "meterkit", "bob")],
      ["another meter (schema)", signBrowserToken([TOKEN_SECRET], "other_schema", "bob")],
      ["a truncated signature", bob.slice(0, -4)],
      ["two dots", bob + ".x"],
      ["the bare prefix", prefix],
    ];
    for (const [, token] of cases) {
      attacks++;
      const res = await handler(new Request("http://app.test/usage", { headers: { authorization: `Bearer ${token}` } }));
      expect(res.status).toBe(401);
      expect(await res.text()).not.toContain(BOB_MARK);
    }
    // The genuine token works (so the refusals above are the checks, not a broken path).
    const ok = await handler(new Request("http://app.test/usage", { headers: { authorization: `Bearer ${bob}` } }));
    expect(await ok.json()).toMatchObject({ userId: "bob" });
  });
});

describe("server routes refuse anyone without a current secret key, and write nothing", () => {
  const ROUTES: Array<[string, string, unknown]> = [
    ["POST", "/v1/reservations", { userId: "bob", meterKey: "llm.tokens", amount: 10 }],
    ["POST", "/v1/reservations/rsv_x/commit", { actual: 1 }],
    ["POST", "/v1/reservations/rsv_x/release", {}],
    ["POST", "/v1/events", { userId: "bob", meterKey: "llm.tokens", amount: 10 }],
    ["POST", "/v1/grants", { userId: "alice", counterKey: "tokens", amount: 1_000_000 }],
    ["PUT", "/v1/subscriptions/alice", { planId: "pro", customLimits: { tokens: { quota: 1e9 } } }],
    ["GET", "/v1/users/bob/usage", undefined],
  ];
  const CREDENTIALS: Array<[string, Record<string, string>, "user" | null, number]> = [
    ["no Authorization header", {}, null, 401],
    ["a wrong key", { authorization: `Bearer ${SECRET.slice(0, -1)}X` }, null, 401],
    ["the key with a suffix", { authorization: `Bearer ${SECRET}x` }, null, 401],
    ["a prefix of the key", { authorization: `Bearer ${SECRET.slice(0, 12)}` }, null, 401],
    ["the key without Bearer", { authorization: SECRET }, null, 401],
    ["the key as Basic auth", { authorization: `Basic ${Buffer.from(`${SECRET}:`).toString("base64")}` }, null, 401],
    ["the key in another header", { "x-api-key": SECRET, "x-meterkit-key": SECRET }, null, 401],
    ["two keys in one header", { authorization: `Bearer ${SECRET} Bearer ${SECRET}` }, null, 401],
    ["a signed-in browser user", {}, "user", 403],
    ["a browser token", { authorization: `Bearer __TOKEN__` }, null, 403],
  ];

  test.each(ROUTES)("%s %s: every wrong credential is refused and nothing is written", async (method, path, body) => {
    const before = await writeSnapshot(internalsOf(t.meter).pool);
    for (const [name, headers, who, status] of CREDENTIALS) {
      for (const h of [handler, rotated]) {
        attacks++;
        const hdrs: Record<string, string> = { ...headers };
        if (hdrs.authorization === "Bearer __TOKEN__") hdrs.authorization = `Bearer ${t.meter.browserToken("alice")}`;
        if (body !== undefined) hdrs["content-type"] = "application/json";
        const res = await h(new Request("http://app.test" + path, { method, headers: hdrs, ...(body === undefined ? {} : { body: JSON.stringify(body) }) }), who ? { user: "alice" } : {});
        expect(res.status, name).toBe(status);
        expect(await res.text(), name).not.toContain(BOB_MARK);
      }
    }
    // A key revoked by rotation no longer opens anything.
    attacks++;
    const revoked = await rotated(new Request("http://app.test" + path, { method, headers: { authorization: `Bearer ${OLD_SECRET}`, "content-type": "application/json" }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) }));
    expect(revoked.status).toBe(401);
    expect(await writeSnapshot(internalsOf(t.meter).pool)).toBe(before);
  });

  test("the current key (and, before the rotation, the old one) does get through", async () => {
    for (const key of [SECRET, OLD_SECRET]) {
      const res = await handler(new Request("http://app.test/v1/users/bob/usage", { headers: { authorization: `Bearer ${key}` } }));
      expect(res.status).toBe(200);
    }
  });
});

describe("oversize bodies", () => {
  /** Streams `total` bytes to `path` in chunks (no Content-Length) and reports how much was sent before the answer. */
  function upload(path: string, total: number, headers: Record<string, string>): Promise<{ status: number; body: string; sentBeforeAnswer: number }> {
    return new Promise((resolve, reject) => {
      let sent = 0;
      let answeredAt = -1;
      const req = httpRequest(srv.url + path, { method: "POST", headers: { ...headers, "transfer-encoding": "chunked" } }, (res) => {
        answeredAt = sent;
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString("utf8")));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, sentBeforeAnswer: answeredAt }));
      });
      req.on("error", (err) => (answeredAt >= 0 ? undefined : reject(err)));
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (sent < total && answeredAt < 0) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once("drain", pump);
        }
        if (answeredAt < 0) req.end();
      };
      req.write("{\"userId\":\"bob\",\"meterKey\":\"llm.tokens\",\"amount\":1,\"metadata\":{\"pad\":\"");
      pump();
    });
  }

  test("a 64 MB body to a server route is refused with 413 long before it is all sent, and nothing is written", async () => {
    const before = await writeSnapshot(internalsOf(t.meter).pool);
    attacks++;
    const r = await upload("/v1/events", 64 * 1024 * 1024, { authorization: `Bearer ${SECRET}`, "content-type": "application/json" });
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: "payload_too_large" } });
    expect(r.sentBeforeAnswer).toBeLessThan(16 * 1024 * 1024);
    expect(await writeSnapshot(internalsOf(t.meter).pool)).toBe(before);
  });

  test("a declared Content-Length over the limit is refused before reading, on the webhook too", async () => {
    for (const [path, size] of [["/v1/reservations", 100_000], ["/stripe/webhook", 2_000_000], ["/checkout", 100_000]] as const) {
      attacks++;
      const res = await handler(
        new Request("http://app.test" + path, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${SECRET}`, "stripe-signature": "t=1,v1=x" }, body: "x".repeat(size) }),
        { user: "alice" },
      );
      // The webhook and checkout answer 404 here (no Stripe configured) or 413: never a 5xx, never a read of the body.
      expect([404, 413]).toContain(res.status);
      if (path === "/v1/reservations") expect(res.status).toBe(413);
    }
  });

  test("the server still answers normally after the floods", async () => {
    const res = await fetch(srv.url + "/usage", { headers: { "x-test-user": "alice" } });
    expect(res.status).toBe(200);
  });
});

describe("many open streams from one user", () => {
  test(`twenty concurrent streams from one user: exactly ${MAX_STREAMS} open, the rest are 429 too_many_requests, other users unaffected, and slots free up when clients leave`, async () => {
    const tries = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const controller = new AbortController();
        const res = await fetch(srv.url + "/usage/stream", { headers: { "x-test-user": "alice" }, signal: controller.signal });
        attacks++;
        return { res, controller };
      }),
    );
    const open = tries.filter((x) => x.res.status === 200);
    const refused = tries.filter((x) => x.res.status !== 200);
    expect(open).toHaveLength(MAX_STREAMS);
    for (const r of refused) {
      expect(r.res.status).toBe(429);
      expect(await r.res.json()).toMatchObject({ error: { code: "too_many_requests", reason: "too_many_streams" } });
    }
    const bob = await openSse(srv.url + "/usage/stream", { "x-test-user": "bob" });
    expect((await bob.next()).userId).toBe("bob");
    await bob.close();
    for (const x of open) x.controller.abort();
    await waitFor(async () => {
      const again = await fetch(srv.url + "/usage/stream", { headers: { "x-test-user": "alice" } });
      await again.body?.cancel();
      return again.status === 200;
    });
  });
});
