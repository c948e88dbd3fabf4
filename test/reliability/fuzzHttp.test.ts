import fc from "fast-check";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { ERROR_CODES } from "../../src/core/errors.js";
import { createMeterHandler, type MeterHandler } from "../../src/server/index.js";
import { stripeTest, type StripeTest } from "../stripe/helpers.js";
import { SECRET, TOKEN_SECRET } from "../http/fixtures.js";
import { amountArb, HOSTILE_IDS, idArb, jsonishArb, leaksInternals } from "./harness/hostile.js";
import { countFailures, recordFigures } from "./harness/report.js";
import { SIZES } from "./harness/sizes.js";
import { writeSnapshot } from "./harness/snapshot.js";
import { internalsOf } from "../../src/server/internals.js";

// Every route of the handler with random and adversarial methods, paths, headers and bodies:
// never a 5xx, never a stack trace or SQL in an answer, always the error shape with a
// registered code matching the status, and never a write on a refused request.
const failures = countFailures(afterEach);
let s: StripeTest;
let handler: MeterHandler<{ user?: string }>;
const internalErrors: unknown[] = [];
const holds: string[] = [];
const figures = { requests: 0, byStatus: {} as Record<string, number> };

beforeAll(async () => {
  s = await stripeTest({ meter: { browserTokenSecret: TOKEN_SECRET, defaultPlan: undefined } });
  handler = createMeterHandler<{ user?: string }>(s.meter, {
    secretKeys: [SECRET],
    identify: (_r, ctx) => ctx?.user,
    maxBodyBytes: 16_384,
    live: { heartbeat: 60_000 },
    onError: (err) => internalErrors.push(err),
  });
  await s.meter.upsertSubscription({ userId: "hf-pro", planId: "pro" });
  await s.meter.upsertSubscription({ userId: "hf-free", planId: "free" });
  for (const amount of [10, 20]) {
    const r = await s.meter.reserve("hf-pro", "llm.tokens", amount, { ttl: 86_400_000 });
    if (r.allowed) holds.push(r.reservationId);
  }
});
afterAll(async () => {
  recordFigures("fuzz: every HTTP route", { operations: figures.requests, violations: failures.n, errorsByCode: figures.byStatus });
  expect(await s.meter.audit()).toEqual([]);
  await s.cleanup();
});

const PATHS = [
  "/usage", "/usage/stream", "/packs", "/checkout", "/stripe/webhook", "/v1/reservations", "/v1/reservations/:id/commit",
  "/v1/reservations/:id/release", "/v1/events", "/v1/grants", "/v1/subscriptions/:id", "/v1/users/:id/usage",
  "/", "/v1", "/v1/reservations/:id", "/usage/:id", "/v1/users/:id", "//usage", "/usage/", "/v1/reservations/:id/commit/extra",
];
const segmentArb = fc.oneof(
  fc.nat().map((i) => holds[i % Math.max(1, holds.length)] ?? "rsv_nope"),
  fc.constantFrom("hf-pro", "hf-free", "nobody", "%00", "%ZZ", "%", "..", ".", "%2F", "%F0%9F%99%82", "%ED%A0%80", "a%0Ab", "x".repeat(3000), "__proto__", "constructor"),
  fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }).map(encodeURIComponent),
);
const fieldArb = fc.record(
  {
    userId: idArb(["hf-pro", "hf-free"]), meterKey: idArb(["llm.tokens", "tokens", "llm.cost", "tokens.refund"]), amount: amountArb,
    model: idArb(["gpt-4o-mini"]), ttl: amountArb, metadata: jsonishArb, actual: amountArb, usage: jsonishArb,
    counterKey: idArb(["tokens", "credits"]), expiresAt: fc.oneof(fc.string(), fc.constant("2030-01-01T00:00:00Z")), source: idArb(["promo"]),
    planId: idArb(["pro", "free"]), customLimits: jsonishArb, startedAt: fc.string(), reservationId: idArb(["rsv_nope"]), packId: idArb(["starter", "big"]),
    successUrl: fc.oneof(fc.webUrl(), fc.constantFrom("javascript:alert(1)", "https://evil.example/x", "//evil.example", "")), cancelUrl: fc.webUrl(),
    extra: jsonishArb,
  },
  { requiredKeys: [] },
);
const bodyArb: fc.Arbitrary<string | Uint8Array | undefined> = fc.oneof(
  fc.constant(undefined),
  { weight: 4, arbitrary: fieldArb.map((b) => safeStringify(b)) },
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.constantFrom("", "{", "null", "[]", '"x"', "1e999", "{\"amount\": 1e999}", "{\"__proto__\": {\"admin\": true}}", "[".repeat(100_000) + "]".repeat(100_000), '{"userId":"hf-pro","meterKey":"tokens","amount":1,"metadata":' + '{"a":'.repeat(2_500) + "1" + "}".repeat(2_501), "{\"a\":\"" + "z".repeat(40_000) + "\"}", "\ufeff{}", '{"userId":"hf-pro","meterKey":"tokens","amount":1,"metadata":{"a":"\\ud800"}}', '{"userId":"hf-pro","counterKey":"tokens","amount":1,"metadata":{"\\udfff":1}}'),
  fc.uint8Array({ maxLength: 200 }),
  fc.constant(new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])), // invalid UTF-8 in a JSON object
);
const authArb = fc.constantFrom("auto", "auto", "auto", "auto", "none", "secret", "wrong", "user", "other-user", "garbage", "basic", "token", "token-tampered");
const requestArb = fc.record({
  method: fc.oneof({ weight: 7, arbitrary: fc.constant("auto") }, { weight: 3, arbitrary: fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD") }),
  path: fc.constantFrom(...PATHS),
  segment: segmentArb,
  query: fc.oneof(fc.constant(""), fc.constantFrom("?userId=hf-free", "?user=hf-free&userId[]=x", "?__proto__[x]=1", "?" + "a=1&".repeat(500))),
  auth: authArb,
  contentType: fc.constantFrom(undefined, "application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", "application/vnd.api+json", "APPLICATION/JSON"),
  key: fc.oneof(fc.constant(undefined), fc.constantFrom(...HOSTILE_IDS.filter((x): x is string => typeof x === "string")), fc.string({ maxLength: 300 })),
  signature: fc.oneof(fc.constant(undefined), fc.string(), fc.constantFrom("t=1,v1=00", "t=9999999999,v1=" + "a".repeat(64), "v1=,t=", "t=" + "9".repeat(400))),
  body: bodyArb,
});

type HostileRequest = typeof requestArb extends fc.Arbitrary<infer T> ? T : never;

function safeStringify(v: unknown): string {
  try {
    return JSON.stringify(v) ?? "null";
  } catch {
    return "{}";
  }
}

function buildRequest(r: HostileRequest): { req: Request; user?: string } | null {
  const headers = new Headers();
  try {
    if (r.contentType) headers.set("content-type", r.contentType);
    if (r.key !== undefined) headers.set("idempotency-key", r.key);
    if (r.signature !== undefined) headers.set("stripe-signature", r.signature);
    let user: string | undefined;
    const v1 = r.path.startsWith("/v1");
    const method = r.method !== "auto" ? r.method : /usage|packs/.test(r.path) && !r.path.startsWith("/v1/s") ? "GET" : r.path.startsWith("/v1/subscriptions") ? "PUT" : "POST";
    const auth = r.auth !== "auto" ? r.auth : v1 ? "secret" : "user";
    switch (auth) {
      case "secret": headers.set("authorization", `Bearer ${SECRET}`); break;
      case "wrong": headers.set("authorization", `Bearer ${SECRET}x`); break;
      case "user": user = "hf-free"; break;
      case "other-user": user = "nobody-subscribed"; break;
      case "garbage": headers.set("authorization", "Bearer \u00ff\u00fe"); break;
      case "basic": headers.set("authorization", "Basic " + Buffer.from("a:b").toString("base64")); break;
      case "token": headers.set("authorization", `Bearer ${s.meter.browserToken("hf-free")}`); break;
      case "token-tampered": headers.set("authorization", `Bearer ${s.meter.browserToken("hf-free").replace(/.$/, (c) => (c === "A" ? "B" : "A"))}`); break;
    }
    const path = r.path.replace(":id", r.segment);
    const hasBody = r.body !== undefined && method !== "GET" && method !== "HEAD";
    return { req: new Request(`http://app.test${path}${r.query}`, { method, headers, ...(hasBody ? { body: r.body as BodyInit } : {}) }), user };
  } catch {
    return null; // not a request any client could send (invalid header value)
  }
}

describe("hostile requests to every route", () => {
  test("never a 5xx, never internals in the answer, always a registered error code, never a write on a refusal", async () => {
    await fc.assert(
      fc.asyncProperty(requestArb, async (r) => {
        const built = buildRequest(r);
        if (!built) return;
        const before = await writeSnapshot(internalsOf(s.meter).pool);
        const res = await handler(built.req, { user: built.user });
        figures.requests++;
        figures.byStatus[res.status] = (figures.byStatus[res.status] ?? 0) + 1;
        const label = `${r.method} ${r.path.replace(":id", r.segment.slice(0, 40))} auth=${r.auth} → ${res.status}`;
        expect(res.status, label).toBeLessThan(500);
        if (res.headers.get("content-type")?.startsWith("text/event-stream")) {
          await res.body?.cancel();
          return;
        }
        const text = await res.text();
        expect(leaksInternals(text), `${label}: ${text.slice(0, 300)}`).toBe(false);
        if (r.method === "HEAD") {
          // HEAD answers like GET without a body; its error is in the status alone.
          expect(text, label).toBe("");
          if (res.status >= 400) expect(await writeSnapshot(internalsOf(s.meter).pool), `${label} wrote`).toBe(before);
          return;
        }
        if (res.status >= 400) {
          const body = JSON.parse(text) as { error: { code: keyof typeof ERROR_CODES; message: string } };
          expect(ERROR_CODES[body.error.code], label).toBe(res.status);
          expect(typeof body.error.message).toBe("string");
          expect(await writeSnapshot(internalsOf(s.meter).pool), `${label} wrote`).toBe(before);
        }
      }),
      { numRuns: SIZES.fuzzRuns * 8 },
    );
    expect(internalErrors).toEqual([]);
  }, SIZES.fuzzTimeout);
});
