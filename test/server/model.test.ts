import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { MeterError } from "../../src/core/errors.js";
import { createMeter, type Meter } from "../../src/server/index.js";
import { clockPool } from "../helpers/clock.js";
import { freshDatabase } from "../helpers/db.js";
import { LedgerModel } from "../helpers/ledger-model.js";

type Op =
  | { kind: "reserve"; amount: number; ttl: number }
  | { kind: "commit"; hold: number; actual: number }
  | { kind: "release"; hold: number }
  | { kind: "track"; amount: number }
  | { kind: "refund"; amount: number }
  | { kind: "grant"; amount: number; expiresIn: number | null }
  | { kind: "advance"; ms: number };

const MINUTE = 60_000;
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("reserve" as const), amount: fc.integer({ min: 1, max: 400 }), ttl: fc.integer({ min: 1, max: 24 * 60 - 1 }).map((m) => m * MINUTE + 500) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("commit" as const), hold: fc.nat(), actual: fc.integer({ min: 0, max: 600 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("release" as const), hold: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("track" as const), amount: fc.integer({ min: 1, max: 300 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("refund" as const), amount: fc.integer({ min: 1, max: 300 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("grant" as const), amount: fc.integer({ min: 1, max: 500 }), expiresIn: fc.option(fc.integer({ min: 1, max: 40 * 24 * 60 }).map((m) => m * MINUTE + 250), { nil: null }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 1, max: 10 * 24 * 60 }).map((m) => m * MINUTE) }) },
);

let db: { url: string; drop: () => Promise<void> };
let clock: ReturnType<typeof clockPool>;
let meter: Meter;
let runs = 0;

beforeAll(async () => {
  db = await freshDatabase();
  clock = clockPool(db.url);
  meter = createMeter({
    database: clock.pool,
    plans: {
      strict: { limits: { tokens: { quota: 1000, period: "month", overage: "reject" } } },
      lenient: { limits: { tokens: { quota: 1000, period: "month", overage: "record" } } },
    },
    sweepInterval: 0,
  });
  await meter.migrate();
});
afterAll(async () => {
  expect(await meter.audit()).toEqual([]);
  await meter.close();
  await clock.pool.end();
  await db.drop();
});

async function run(ops: Op[], policy: "strict" | "lenient") {
  const user = `model-${policy}-${++runs}`;
  const start = Date.UTC(2026, 0, 20, 8, 0, 0);
  const model = new LedgerModel(1000, policy === "strict" ? "reject" : "record", start);
  await clock.set(new Date(start));
  await meter.upsertSubscription({ userId: user, planId: policy, startedAt: new Date(start) });
  const holds: string[] = [];
  const modelIds: string[] = [];
  for (const o of ops) {
    await clock.set(new Date(model.now));
    switch (o.kind) {
      case "advance":
        model.now += o.ms;
        await clock.set(new Date(model.now));
        break;
      case "reserve": {
        const r = await meter.reserve(user, "tokens", o.amount, { ttl: o.ttl });
        const id = r.allowed ? r.reservationId : "";
        expect(r.allowed).toBe(model.reserve(id, o.amount, o.ttl));
        if (r.allowed) {
          holds.push(r.reservationId);
          modelIds.push(id);
        }
        break;
      }
      case "commit":
      case "release": {
        if (holds.length === 0) break;
        const i = o.hold % holds.length;
        const release = o.kind === "release";
        // Strict plans never commit more than the hold, so the invariant must hold throughout.
        const amount = model.holds.find((h) => h.id === modelIds[i])!.amount;
        const actual = o.kind === "commit" ? (policy === "strict" ? Math.min(o.actual, amount) : o.actual) : 0;
        const expected = model.resolve(modelIds[i]!, release, actual);
        const got = await (release ? meter.release(holds[i]!) : meter.commit(holds[i]!, { actual })).then(
          () => "ok",
          (e: MeterError) => (e.code === "conflict" ? String(e.details.reason) : `error ${e.code}`),
        );
        expect(got).toBe(expected === "repeat" ? "ok" : expected);
        break;
      }
      case "track": {
        const ok = await meter.track(user, "tokens", o.amount).then(() => true, (e: MeterError) => (e.code === "limit_reached" ? false : Promise.reject(e)));
        expect(ok).toBe(model.track(o.amount));
        break;
      }
      case "refund": {
        const r = await meter.track(user, "tokens.refund", o.amount);
        expect(0 - r.amount + 0).toBe(model.refund(o.amount));
        break;
      }
      case "grant":
        {
          const g = await meter.grant(user, "tokens", o.amount, o.expiresIn === null ? {} : { expiresAt: new Date(model.now + o.expiresIn) });
          model.grant(g.grantId, o.amount, o.expiresIn);
        }
        break;
    }
    const c = (await meter.usage(user)).counters[0]!;
    expect({ quota: c.quota, used: c.used, held: c.held, granted: c.granted, remaining: c.remaining, periodStart: c.periodStart }).toEqual(model.usage());
    if (policy === "strict") expect(c.used + c.held).toBeLessThanOrEqual(c.quota! + c.granted);
  }
  expect(await meter.audit(user)).toEqual([]);
}

describe("the ledger matches an in-memory reference model", () => {
  test("random sequences on a plan that rejects overage: usage equals the model and used + held never exceeds quota + granted", async () => {
    await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 45 }), (ops) => run(ops, "strict")), { numRuns: 40 });
  });

  test("random sequences on a plan that records overage: usage equals the model", async () => {
    await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 45 }), (ops) => run(ops, "lenient")), { numRuns: 30 });
  });
});
