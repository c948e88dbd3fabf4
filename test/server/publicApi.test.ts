import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createMeter, type Meter } from "../../src/server/index.js";
import { clockPool } from "../helpers/clock.js";
import { freshDatabase } from "../helpers/db.js";
import { TEST_PLANS } from "../helpers/meter.js";

/*
 * What the demo and the tests used to read from the database behind the meter's back: a
 * reservation's state, erasing a user, a counter's default label. Each through the public API.
 */
let db: Awaited<ReturnType<typeof freshDatabase>>;
let clock: ReturnType<typeof clockPool>;
let meter: Meter;

beforeAll(async () => {
  db = await freshDatabase();
  clock = clockPool(db.url);
  meter = createMeter({
    database: clock.pool,
    plans: {
      ...TEST_PLANS,
      labelled: { limits: { llm_input_tokens: { quota: 10 }, outputTokens: { quota: 10, label: "Output" } } },
    },
    meters: { "llm.tokens": { counter: "tokens" } },
    sweepInterval: 0,
    holdTtl: 60_000,
  });
  await meter.migrate();
});
afterAll(async () => {
  await meter.close();
  await clock.pool.end();
  await db.drop();
});

async function hold(userId: string, amount: number, options = {}) {
  const r = await meter.reserve(userId, "llm.tokens", amount, options);
  if (!r.allowed) throw new Error("reserve denied");
  return r;
}

describe("default counter labels", () => {
  test("a counter without a label is shown as a readable form of its key", async () => {
    await meter.upsertSubscription({ userId: "lab", planId: "free" });
    expect((await meter.usage("lab")).counters.find((c) => c.label === "Tokens")).toMatchObject({ key: "tokens" });
    await meter.upsertSubscription({ userId: "lab2", planId: "labelled" });
    const labels = Object.fromEntries((await meter.usage("lab2")).counters.map((c) => [c.key, c.label]));
    expect(labels).toEqual({ llm_input_tokens: "Llm input tokens", outputTokens: "Output" });
  });
});

describe("meter.reservation(id)", () => {
  test("an open hold: what it holds, for whom, until when, with its metadata", async () => {
    await clock.set("2026-03-01T10:00:00.000Z");
    await meter.upsertSubscription({ userId: "res", planId: "free" });
    const r = await hold("res", 300, { model: "gpt-4o-mini", metadata: { inputTokens: 120 } });
    expect(await meter.reservation(r.reservationId)).toEqual({
      id: r.reservationId,
      userId: "res",
      counter: "tokens",
      meterKey: "llm.tokens",
      status: "open",
      held: 300,
      committed: 0,
      refunded: 0,
      overage: 0,
      model: "gpt-4o-mini",
      metadata: { inputTokens: 120 },
      createdAt: expect.any(String), // holds.created_at is now(), not the test clock
      expiresAt: "2026-03-01T10:01:00.000Z",
      resolvedAt: null,
    });
  });

  test("a committed hold shows what was charged and what went back", async () => {
    await meter.upsertSubscription({ userId: "res2", planId: "free" });
    const r = await hold("res2", 300);
    await meter.commit(r.reservationId, { actual: 120 });
    expect(await meter.reservation(r.reservationId)).toMatchObject({ status: "committed", held: 300, committed: 120, refunded: 180, overage: 0 });
    const o = await hold("res2", 50);
    await meter.commit(o.reservationId, { actual: 70 });
    expect(await meter.reservation(o.reservationId)).toMatchObject({ status: "committed", held: 50, committed: 70, refunded: 0, overage: 20 });
  });

  test("a released hold gave everything back", async () => {
    await meter.upsertSubscription({ userId: "res3", planId: "free" });
    const r = await hold("res3", 200);
    await meter.release(r.reservationId);
    const state = await meter.reservation(r.reservationId);
    expect(state).toMatchObject({ status: "released", held: 200, committed: 0, refunded: 200 });
    expect(state!.resolvedAt).not.toBeNull();
  });

  test("a hold past its expiry reads as expired by the database clock, before any sweep", async () => {
    await clock.set("2026-03-02T10:00:00.000Z");
    await meter.upsertSubscription({ userId: "res4", planId: "free" });
    const r = await hold("res4", 100, { ttl: 1_000 });
    await clock.set("2026-03-02T10:00:05.000Z");
    expect(await meter.reservation(r.reservationId)).toMatchObject({ status: "expired", held: 100, committed: 0, refunded: 100 });
  });

  test("an unknown id is null; a malformed one is invalid_request", async () => {
    expect(await meter.reservation("rsv_nope")).toBeNull();
    await expect(meter.reservation("")).rejects.toMatchObject({ code: "invalid_request" });
  });
});

describe("meter.eraseUser(userId)", () => {
  test("removes every row of the user and only theirs; the user can start again", async () => {
    await clock.set("2026-03-03T10:00:00.000Z");
    for (const u of ["gone", "kept"]) {
      await meter.upsertSubscription({ userId: u, planId: "free" });
      await meter.grant(u, "tokens", 500, { idempotencyKey: `g-${u}` });
      const r = await hold(u, 100, { idempotencyKey: `h-${u}` });
      await meter.commit(r.reservationId, { actual: 40 });
      await hold(u, 10);
    }
    const before = await meter.usage("kept");
    const erased = await meter.eraseUser("gone");
    expect(erased).toBeGreaterThan(0);
    expect(await meter.entries("gone")).toEqual([]);
    await expect(meter.usage("gone")).rejects.toMatchObject({ code: "not_found" });
    expect(await meter.usage("kept")).toEqual(before);
    expect(await meter.audit()).toEqual([]);
    await meter.upsertSubscription({ userId: "gone", planId: "free" });
    expect((await meter.usage("gone")).counters[0]).toMatchObject({ used: 0, held: 0, granted: 0, remaining: 1000 });
    // The same idempotency key now grants again: the old key went with the user.
    expect((await meter.grant("gone", "tokens", 500, { idempotencyKey: "g-gone" })).remaining).toBe(1500);
  });

  test("erasing an unknown user removes nothing", async () => {
    expect(await meter.eraseUser("nobody")).toBe(0);
  });
});

describe("the internals stay internal", () => {
  test("a meter has no internals property, and its keys are the public API", () => {
    // @ts-expect-error internals are not part of the Meter type
    expect(meter.internals).toBeUndefined();
    expect(Object.keys(meter)).not.toContain("internals");
    expect(JSON.stringify(Object.keys(meter))).not.toMatch(/pool|schema/);
  });
});
