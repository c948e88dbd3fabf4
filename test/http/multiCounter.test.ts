import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createMeter, createMeterHandler, type Meter, type MeterHandler } from "../../src/server/index.js";
import { internalsOf } from "../../src/server/internals.js";
import { clockPool } from "../helpers/clock.js";
import { freshDatabase } from "../helpers/db.js";
import { SECRET } from "./fixtures.js";

// The object form of POST /v1/reservations ({ userId, amounts }) and per-part commits, over the
// Web handler, on the database clock (for retryAfter).
let db: Awaited<ReturnType<typeof freshDatabase>>;
let clock: ReturnType<typeof clockPool>;
let meter: Meter;
let handler: MeterHandler<unknown>;

beforeAll(async () => {
  db = await freshDatabase();
  clock = clockPool(db.url);
  meter = createMeter({
    database: clock.pool,
    sweepInterval: 0,
    plans: {
      split: {
        limits: {
          tokens_in: { quota: 1_000, period: "minute" },
          tokens_out: { quota: 500, period: "minute" },
          inflight: { kind: "concurrency", quota: 2 },
        },
      },
    },
    meters: {
      "llm.input": { counter: "tokens_in", counts: "input" },
      "llm.output": { counter: "tokens_out", counts: "output" },
      "llm.slot": { counter: "inflight" },
    },
  });
  await meter.migrate();
  handler = createMeterHandler(meter, { secretKeys: [SECRET] });
});
afterAll(async () => {
  await meter.close();
  await clock.pool.end();
  await db.drop();
});

const post = (path: string, body: unknown, key?: string) =>
  handler(
    new Request("http://app.test" + path, {
      method: "POST",
      headers: { authorization: `Bearer ${SECRET}`, "content-type": "application/json", ...(key ? { "idempotency-key": key } : {}) },
      body: typeof body === "string" ? body : JSON.stringify(body),
    }),
  );
const read = async (res: Response) => (await res.json()) as Record<string, any>;

/** Ledger rows and idempotency claims: "nothing written" means this does not change. */
async function writes(): Promise<number> {
  const { rows } = await internalsOf(meter).pool.query<{ n: string }>(
    `SELECT (SELECT count(*) FROM meterkit.entries) + (SELECT count(*) FROM meterkit.holds)
          + (SELECT count(*) FROM meterkit.http_idempotency) + (SELECT count(*) FROM meterkit.idempotency) AS n`,
  );
  return Number(rows[0]!.n);
}

const counters = async (user: string) =>
  Object.fromEntries((await meter.usage(user)).counters.map((c) => [c.key, { used: c.used, held: c.held }]));

describe("POST /v1/reservations with amounts", () => {
  test("holds every counter under one id; commit takes per-part actuals; overage is recorded per part", async () => {
    await clock.set("2026-07-01T10:00:05Z");
    await meter.upsertSubscription({ userId: "h1", planId: "split" });
    const res = await post("/v1/reservations", { userId: "h1", amounts: { "llm.input": 300, "llm.output": 200, "llm.slot": 1 }, model: "gpt-4o" });
    expect(res.status).toBe(200);
    const r = await read(res);
    expect(r).toMatchObject({
      allowed: true,
      parts: { tokens_in: { meterKey: "llm.input", amount: 300 }, tokens_out: { meterKey: "llm.output", amount: 200 }, inflight: { amount: 1 } },
    });
    expect(await counters("h1")).toEqual({ tokens_in: { used: 0, held: 300 }, tokens_out: { used: 0, held: 200 }, inflight: { used: 0, held: 1 } });

    const c = await read(await post(`/v1/reservations/${r.reservationId}/commit`, { actual: { "llm.input": 250, tokens_out: 260 } }));
    expect(c.parts.tokens_in).toMatchObject({ held: 300, committed: 250, refunded: 50, overage: 0 });
    expect(c.parts.tokens_out).toMatchObject({ held: 200, committed: 260, refunded: 0, overage: 60 });
    expect(c.parts.inflight).toMatchObject({ committed: 0 });
    expect(await counters("h1")).toEqual({ tokens_in: { used: 250, held: 0 }, tokens_out: { used: 260, held: 0 }, inflight: { used: 0, held: 0 } });
  });

  test("commit with usage gives each part its side; release frees every part", async () => {
    await clock.set("2026-07-01T10:01:05Z");
    await meter.upsertSubscription({ userId: "h2", planId: "split" });
    const a = await read(await post("/v1/reservations", { userId: "h2", amounts: { "llm.input": 100, "llm.output": 100 } }));
    await post(`/v1/reservations/${a.reservationId}/commit`, { usage: { inputTokens: 80, cachedInputTokens: 30, outputTokens: 40 } });
    const b = await read(await post("/v1/reservations", { userId: "h2", amounts: { "llm.input": 100, "llm.output": 100 } }));
    const released = await read(await post(`/v1/reservations/${b.reservationId}/release`, {}));
    expect(released).toMatchObject({ status: "released", released: 200, parts: { tokens_in: { released: 100 }, tokens_out: { released: 100 } } });
    expect(await counters("h2")).toMatchObject({ tokens_in: { used: 80, held: 0 }, tokens_out: { used: 40, held: 0 } });
  });

  test("all or nothing: a denial on one counter holds none, answers limit_reached with retryAfter and Retry-After", async () => {
    await clock.set("2026-07-01T10:02:40Z");
    await meter.upsertSubscription({ userId: "h3", planId: "split" });
    const before = await writes();
    const res = await post("/v1/reservations", { userId: "h3", amounts: { "llm.input": 100, "llm.output": 501 } });
    expect(res.status).toBe(200);
    // 501 exceeds the whole minute's allowance: waiting cannot help, so no retryAfter.
    expect(await read(res)).toEqual({ allowed: false, reason: "limit_reached", counter: "tokens_out", remaining: 500, required: 501 });
    expect(res.headers.get("retry-after")).toBeNull();

    const first = await read(await post("/v1/reservations", { userId: "h3", amounts: { "llm.input": 100, "llm.output": 400 } }));
    expect(first.allowed).toBe(true);
    const denied = await post("/v1/reservations", { userId: "h3", amounts: { "llm.input": 100, "llm.output": 200 } });
    expect(await read(denied)).toEqual({ allowed: false, reason: "limit_reached", counter: "tokens_out", remaining: 100, required: 200, retryAfter: 20 });
    expect(denied.headers.get("retry-after")).toBe("20");
    // Nothing of the denied reservation was held: tokens_in holds only the first one's 100.
    expect(await counters("h3")).toMatchObject({ tokens_in: { held: 100 }, tokens_out: { held: 400 } });
    expect(await writes()).toBeGreaterThan(before);
  });

  test("the same Idempotency-Key and amounts answer the first reservation again; other amounts are a conflict", async () => {
    await clock.set("2026-07-01T10:03:05Z");
    await meter.upsertSubscription({ userId: "h4", planId: "split" });
    const body = { userId: "h4", amounts: { "llm.input": 10, "llm.output": 20 } };
    const first = await read(await post("/v1/reservations", body, "multi-1"));
    const before = await writes();
    expect(await read(await post("/v1/reservations", body, "multi-1"))).toEqual(first);
    expect(await writes()).toBe(before);
    const other = await post("/v1/reservations", { userId: "h4", amounts: { "llm.input": 10, "llm.output": 21 } }, "multi-1");
    expect(other.status).toBe(409);
    expect(await writes()).toBe(before);
  });
});

describe("bad object-form bodies are 400 invalid_request naming the path, and write nothing", () => {
  const cases: Array<[string, unknown, string]> = [
    ["both forms at once", { userId: "h5", meterKey: "llm.input", amount: 1, amounts: { "llm.output": 1 } }, "amounts"],
    ["amounts that is not an object", { userId: "h5", amounts: [1, 2] }, "amounts"],
    ["an empty amounts", { userId: "h5", amounts: {} }, "amounts"],
    ["a nested object as an amount", { userId: "h5", amounts: { "llm.input": { value: 1 } } }, "amounts.llm.input"],
    ["a fraction", { userId: "h5", amounts: { "llm.input": 1.5 } }, "amounts.llm.input"],
    ["an unsafe integer", { userId: "h5", amounts: { "llm.input": 2 ** 53 } }, "amounts.llm.input"],
    ["a negative amount", { userId: "h5", amounts: { "llm.input": -1 } }, "amounts.llm.input"],
    ["a string amount", { userId: "h5", amounts: { "llm.input": "10" } }, "amounts.llm.input"],
    ["an unknown field beside amounts", { userId: "h5", amounts: { "llm.input": 1 }, modle: "gpt-4o" }, "modle"],
    ["no userId", { amounts: { "llm.input": 1 } }, "userId"],
  ];
  test.each(cases)("%s", async (_name, body, field) => {
    await meter.upsertSubscription({ userId: "h5", planId: "split" });
    const before = await writes();
    const res = await post("/v1/reservations", body, "bad-" + _name);
    expect(res.status).toBe(400);
    expect((await read(res)).error).toMatchObject({ code: "invalid_request", field });
    expect(await writes()).toBe(before);
  });

  test("an unknown meter key is 404 not_found and holds nothing on the other counters", async () => {
    const before = await writes();
    const res = await post("/v1/reservations", { userId: "h5", amounts: { "llm.input": 1, "llm.nope": 1 } }, "bad-meter");
    expect(res.status).toBe(404);
    expect(await counters("h5")).toMatchObject({ tokens_in: { held: 0 } });
    expect(await writes()).toBe(before);
  });

  test("a commit's actual must be a number or amounts; a bad part amount names its path", async () => {
    await clock.set("2026-07-01T10:04:05Z");
    const r = await read(await post("/v1/reservations", { userId: "h5", amounts: { "llm.input": 10, "llm.output": 10 } }));
    const before = await writes();
    for (const [actual, field] of [
      ["10", "actual"],
      [{ "llm.input": -3 }, "actual.llm.input"],
      [{ "llm.input": { n: 3 } }, "actual.llm.input"],
    ] as const) {
      const res = await post(`/v1/reservations/${r.reservationId}/commit`, { actual });
      expect(res.status).toBe(400);
      expect((await read(res)).error).toMatchObject({ code: "invalid_request", field });
    }
    // A plain number on a multi-counter reservation is refused by the ledger, before writing.
    const plain = await post(`/v1/reservations/${r.reservationId}/commit`, { actual: 5 });
    expect(plain.status).toBe(400);
    expect(await writes()).toBe(before);
    expect(await counters("h5")).toMatchObject({ tokens_in: { used: 0, held: 10 }, tokens_out: { used: 0, held: 10 } });
  });
});
