import { internalsOf } from "../../src/server/internals.js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createMeter, type Meter } from "../../src/server/index.js";
import { clockPool } from "../helpers/clock.js";
import { freshDatabase } from "../helpers/db.js";

// Multi-counter reservations: one id holding input and output tokens (and a concurrency slot).
let db: Awaited<ReturnType<typeof freshDatabase>>;
let clock: ReturnType<typeof clockPool>;
let meter: Meter;
const PLANS = {
  split: {
    limits: {
      tokens_in: { quota: 1000 },
      tokens_out: { quota: 500 },
      inflight: { kind: "concurrency" as const, quota: 2 },
    },
  },
};
const METERS = {
  "llm.input": { counter: "tokens_in", counts: "input" as const },
  "llm.output": { counter: "tokens_out", counts: "output" as const },
  "llm.slot": { counter: "inflight" },
};

beforeAll(async () => {
  db = await freshDatabase();
  clock = clockPool(db.url);
  meter = createMeter({ database: clock.pool, sweepInterval: 0, plans: PLANS, meters: METERS });
  await meter.migrate();
});
afterAll(async () => {
  await meter.close();
  await clock.pool.end();
  await db.drop();
});

const counters = async (m: Meter, user: string) =>
  Object.fromEntries((await m.usage(user)).counters.map((c) => [c.key, { used: c.used, held: c.held, remaining: c.remaining }]));

describe("multi-counter reservations", () => {
  test("one id holds every counter; commit { usage } charges input to the input counter and output to the output counter", async () => {
    await clock.set("2026-07-01T10:00:00Z");
    await meter.upsertSubscription({ userId: "u1", planId: "split" });
    const r = await meter.reserve("u1", { "llm.input": 300, "llm.output": 200, "llm.slot": 1 });
    expect(r).toMatchObject({ allowed: true, parts: { tokens_in: { amount: 300, remaining: 700 }, tokens_out: { amount: 200, remaining: 300 }, inflight: { amount: 1, remaining: 1 } } });
    if (!r.allowed) throw new Error("denied");
    expect(await counters(meter, "u1")).toMatchObject({ tokens_in: { held: 300 }, tokens_out: { held: 200 }, inflight: { held: 1 } });
    const c = await meter.commit(r.reservationId, { usage: { inputTokens: 250, outputTokens: 260 } });
    expect(c).toMatchObject({ status: "committed", reservationId: r.reservationId, userId: "u1" });
    expect(c.parts).toMatchObject({ tokens_in: { committed: 250, refunded: 50 }, tokens_out: { committed: 260, overage: 60 }, inflight: { committed: 0 } });
    expect(await counters(meter, "u1")).toEqual({
      tokens_in: { used: 250, held: 0, remaining: 750 },
      tokens_out: { used: 260, held: 0, remaining: 240 },
      inflight: { used: 0, held: 0, remaining: 2 },
    });
    // The same commit again returns the same result; a different one is a conflict; a release too.
    expect(await meter.commit(r.reservationId, { usage: { inputTokens: 250, outputTokens: 260 } })).toEqual(c);
    await expect(meter.commit(r.reservationId, { usage: { inputTokens: 1, outputTokens: 1 } })).rejects.toMatchObject({ code: "conflict" });
    await expect(meter.release(r.reservationId)).rejects.toMatchObject({ code: "conflict" });
    expect(await meter.audit("u1")).toEqual([]);
  });

  test("commit { actual } per meter key; a part not named commits its hold; a number is refused", async () => {
    await meter.upsertSubscription({ userId: "u2", planId: "split" });
    const r = await meter.reserve("u2", { "llm.input": 100, "llm.output": 50 });
    if (!r.allowed) throw new Error("denied");
    await expect(meter.commit(r.reservationId, { actual: 10 })).rejects.toMatchObject({ code: "invalid_request" });
    const c = await meter.commit(r.reservationId, { actual: { "llm.input": 40 } });
    expect(c).toMatchObject({ held: 150, committed: 90, refunded: 60, remaining: 450 });
    expect(await counters(meter, "u2")).toMatchObject({ tokens_in: { used: 40, held: 0 }, tokens_out: { used: 50, held: 0 } });
  });

  test("release frees every part; a denial names the counter and holds nothing", async () => {
    await meter.upsertSubscription({ userId: "u3", planId: "split" });
    const r = await meter.reserve("u3", { "llm.input": 900, "llm.output": 400 });
    if (!r.allowed) throw new Error("denied");
    const denied = await meter.reserve("u3", { "llm.input": 50, "llm.output": 101 });
    expect(denied).toMatchObject({ allowed: false, reason: "limit_reached", counter: "tokens_out", remaining: 100, required: 101 });
    expect(await counters(meter, "u3")).toMatchObject({ tokens_in: { held: 900 }, tokens_out: { held: 400 } });
    const rel = await meter.release(r.reservationId);
    expect(rel).toMatchObject({ status: "released", released: 1300, parts: { tokens_in: { released: 900 }, tokens_out: { released: 400 } } });
    expect(await meter.release(r.reservationId)).toEqual(rel);
    expect(await counters(meter, "u3")).toMatchObject({ tokens_in: { held: 0, used: 0 }, tokens_out: { held: 0, used: 0 } });
    expect(await meter.audit("u3")).toEqual([]);
  });

  test("every part expires together on the database clock; the idempotency key holds once", async () => {
    await clock.set("2026-07-01T12:00:00Z");
    await meter.upsertSubscription({ userId: "u4", planId: "split" });
    const a = await meter.reserve("u4", { "llm.input": 10, "llm.output": 10, "llm.slot": 1 }, { ttl: 1000, idempotencyKey: "k1" });
    const b = await meter.reserve("u4", { "llm.input": 10, "llm.output": 10, "llm.slot": 1 }, { ttl: 1000, idempotencyKey: "k1" });
    expect(b).toEqual(a);
    expect(await counters(meter, "u4")).toMatchObject({ tokens_in: { held: 10 }, tokens_out: { held: 10 }, inflight: { held: 1 } });
    await clock.set("2026-07-01T12:00:01Z");
    expect(await counters(meter, "u4")).toMatchObject({ tokens_in: { held: 0 }, tokens_out: { held: 0 }, inflight: { held: 0 } });
    if (!a.allowed) throw new Error("denied");
    await expect(meter.commit(a.reservationId)).rejects.toMatchObject({ code: "conflict" });
    await meter.reserve("u4", "llm.input", 1); // records the expiry entries of that counter
    expect(await meter.audit("u4")).toEqual([]);
  });

  test("a part cannot be resolved on its own", async () => {
    await meter.upsertSubscription({ userId: "u5", planId: "split" });
    const r = await meter.reserve("u5", { "llm.input": 10, "llm.output": 10 });
    if (!r.allowed) throw new Error("denied");
    await expect(meter.commit(`${r.reservationId}.tokens_in`)).rejects.toMatchObject({ code: "invalid_request" });
    await expect(meter.release(`${r.reservationId}.tokens_out`)).rejects.toMatchObject({ code: "invalid_request" });
    expect(await counters(meter, "u5")).toMatchObject({ tokens_in: { held: 10 }, tokens_out: { held: 10 } });
    expect((await meter.release(r.reservationId)).released).toBe(20);
  });

  test("two meters on one counter in one reservation are refused", async () => {
    const m = createMeter({ database: db.url, sweepInterval: 0, plans: PLANS, meters: { ...METERS, "llm.more": { counter: "tokens_in" } } });
    await expect(m.reserve("u1", { "llm.input": 1, "llm.more": 1 })).rejects.toMatchObject({ code: "invalid_request" });
    await m.close();
  });

  test("property: 64 concurrent callers never oversell any counter and never hold one part without the others", async () => {
    const wide = createMeter({ database: db.url, sweepInterval: 0, poolSize: 16, plans: PLANS, meters: METERS });
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ i: fc.integer({ min: 1, max: 120 }), o: fc.integer({ min: 1, max: 60 }), slot: fc.boolean(), end: fc.constantFrom("commit", "release", "open") }), { minLength: 64, maxLength: 64 }),
        async (calls) => {
          const user = `prop${run++}`;
          await wide.upsertSubscription({ userId: user, planId: "split" });
          const results = await Promise.all(
            calls.map((c) => wide.reserve(user, c.slot ? { "llm.output": c.o, "llm.input": c.i, "llm.slot": 1 } : { "llm.input": c.i, "llm.output": c.o })),
          );
          let heldIn = 0;
          let heldOut = 0;
          let slots = 0;
          results.forEach((r, k) => {
            if (!r.allowed) return;
            heldIn += r.parts.tokens_in!.amount;
            heldOut += r.parts.tokens_out!.amount;
            if (calls[k]!.slot) slots += 1;
            expect(Object.keys(r.parts).sort()).toEqual(calls[k]!.slot ? ["inflight", "tokens_in", "tokens_out"] : ["tokens_in", "tokens_out"]);
          });
          expect(heldIn).toBeLessThanOrEqual(1000);
          expect(heldOut).toBeLessThanOrEqual(500);
          expect(slots).toBeLessThanOrEqual(2);
          const u = await counters(wide, user);
          expect(u).toMatchObject({ tokens_in: { held: heldIn }, tokens_out: { held: heldOut }, inflight: { held: slots } });
          await Promise.all(
            results.map((r, k) => {
              if (!r.allowed) return null;
              const end = calls[k]!.end;
              if (end === "commit") return wide.commit(r.reservationId, { usage: { inputTokens: calls[k]!.i, outputTokens: calls[k]!.o } });
              if (end === "release") return wide.release(r.reservationId);
              return null;
            }),
          );
          // Every hold row of a reservation has its parts' status: none resolved without the others.
          const { rows } = await internalsOf(wide).pool.query<{ n: string }>(
            `SELECT count(*) AS n FROM (SELECT group_id FROM meterkit.holds WHERE user_id = $1 AND group_id IS NOT NULL
             GROUP BY group_id HAVING count(DISTINCT status) > 1) x`,
            [user],
          );
          expect(rows[0]!.n).toBe("0");
          expect(await wide.audit(user)).toEqual([]);
        },
      ),
      { numRuns: 8 },
    );
    await wide.close();
  });
});
