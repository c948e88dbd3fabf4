import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createMeterHandler, type MeterHandler } from "../../src/server/index.js";
import { testMeter, type TestMeter } from "../helpers/meter.js";
import { SECRET } from "./fixtures.js";

// docs/http.md: "an unknown field is 400 (a typo is never silently ignored)" — at every depth,
// not only at the top of the body: the routes hand nested objects to the ledger's validators.
let t: TestMeter;
let handler: MeterHandler<unknown>;
const BASE = "http://app.test/api/meter";

beforeAll(async () => {
  t = await testMeter();
  handler = createMeterHandler(t.meter, { basePath: "/api/meter", secretKeys: [SECRET], identify: () => undefined, onError: () => {} });
  await t.meter.upsertSubscription({ userId: "alice", planId: "pro" });
});
afterAll(async () => {
  await t.cleanup();
});

const post = (path: string, body: unknown, init: { method?: string; key?: string } = {}) => {
  const headers = new Headers({ authorization: `Bearer ${SECRET}`, "content-type": "application/json" });
  if (init.key) headers.set("idempotency-key", init.key);
  return handler(new Request(BASE + path, { method: init.method ?? "POST", headers, body: JSON.stringify(body) }));
};

async function writes(): Promise<number> {
  const { rows } = await t.meter.internals.pool.query<{ n: string }>(
    `SELECT (SELECT count(*) FROM meterkit.entries) + (SELECT count(*) FROM meterkit.http_idempotency)
          + (SELECT count(*) FROM meterkit.idempotency) AS n`,
  );
  return Number(rows[0]!.n);
}

async function reservation(): Promise<string> {
  const res = await post("/v1/reservations", { userId: "alice", meterKey: "llm.cost", amount: 1000, model: "gpt-4o-mini" });
  const r = (await res.json()) as { reservationId: string };
  return r.reservationId;
}

describe("unknown nested fields are 400 invalid_request naming their path, and write nothing", () => {
  test("commit with usage.cachedTokens (a typo of cachedInputTokens) is refused, not charged at full input price", async () => {
    const id = await reservation();
    const before = await writes();
    const res = await post(`/v1/reservations/${id}/commit`, { usage: { inputTokens: 1000, cachedTokens: 999, outputTokens: 10 } }, { key: "c-typo" });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatchObject({ code: "invalid_request", field: "usage.cachedTokens" });
    expect(await writes()).toBe(before);
    // The hold is still open: the corrected commit goes through.
    const ok = await post(`/v1/reservations/${id}/commit`, { usage: { inputTokens: 1000, cachedInputTokens: 999, outputTokens: 10 } });
    expect(ok.status).toBe(200);
  });

  test("a subscription with customLimits.tokens.quotta is refused", async () => {
    const before = await writes();
    const res = await post("/v1/subscriptions/alice", { planId: "pro", customLimits: { tokens: { quotta: 5 } } }, { method: "PUT", key: "s-typo" });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatchObject({ code: "invalid_request", field: "customLimits.tokens.quotta" });
    expect(await writes()).toBe(before);
    expect((await t.meter.usage("alice")).counters.find((c) => c.key === "tokens")).toMatchObject({ quota: 100_000 });
  });

  test("customLimits with quota null over HTTP makes a counter unlimited", async () => {
    const res = await post("/v1/subscriptions/alice", { planId: "pro", customLimits: { images: { quota: null } } }, { method: "PUT" });
    expect(res.status).toBe(200);
    expect((await t.meter.usage("alice")).counters.find((c) => c.key === "images")).toMatchObject({ quota: null, remaining: null });
  });

  test("a grant with an impossible or past expiry is refused with field expiresAt", async () => {
    for (const expiresAt of ["2026-02-30", "2001-01-01T00:00:00Z"]) {
      const res = await post("/v1/grants", { userId: "alice", counterKey: "tokens", amount: 10, expiresAt });
      expect(res.status).toBe(400);
      expect((await res.json()).error).toMatchObject({ code: "invalid_request", field: "expiresAt" });
    }
  });

  test("a second commit with other numbers is 409 conflict carrying the first result", async () => {
    const res = await post("/v1/reservations", { userId: "alice", meterKey: "llm.tokens", amount: 100 });
    const { reservationId } = (await res.json()) as { reservationId: string };
    const first = await (await post(`/v1/reservations/${reservationId}/commit`, { actual: 10 })).json();
    const again = await post(`/v1/reservations/${reservationId}/commit`, { actual: 90 });
    expect(again.status).toBe(409);
    expect((await again.json()).error).toMatchObject({ code: "conflict", reason: "committed", result: first });
  });

  test("a grant past 2^53 - 1 is 400 naming the limit, never a 500", async () => {
    await t.meter.upsertSubscription({ userId: "max", planId: "free" });
    const res = await post("/v1/grants", { userId: "max", counterKey: "tokens", amount: Number.MAX_SAFE_INTEGER });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatchObject({ code: "invalid_request", reason: "max_safe_integer", limit: Number.MAX_SAFE_INTEGER });
  });
});
