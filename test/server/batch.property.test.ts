import fc from "fast-check";
import { afterAll, beforeAll, expect, test } from "vitest";
import { MeterError } from "../../src/core/errors.js";
import { createMeter, type CreateMeterOptions, type Meter } from "../../src/server/index.js";
import { clockPool } from "../helpers/clock.js";
import { freshDatabase } from "../helpers/db.js";

/*
 * The same random workload through a batched meter and an unbatched one (each on its own
 * database, same frozen clock): every answer, every final usage and both audits must agree.
 * The workload comes in waves. The unbatched meter runs a wave's calls one after another; the
 * batched one gets the whole wave at once, so all but its first call share one op_batch, in
 * arrival order. Calls in a wave may touch the same user and the same hold (double commits,
 * repeated idempotency keys), so the batch meets every case inside one transaction.
 */

const PLANS: CreateMeterOptions["plans"] = {
  // Anchored at the subscription's start, so when a first contact subscribes a new user shows.
  strict: { limits: { tokens: { quota: 1000, period: "month", anchor: "subscription_start", overage: "reject" }, out: { quota: 600, period: "month", overage: "reject" } } },
  lenient: { limits: { tokens: { quota: 1000, period: "month" }, out: { quota: 600, period: "month" } } },
};
const USERS = 3;
const MINUTE = 60_000;

type Call =
  | { kind: "reserve"; user: number; amount: number; ttl: number; key: string | null }
  | { kind: "reserveMulti"; user: number; tokens: number; out: number; key: string | null }
  | { kind: "commit"; hold: number; actual: number | null }
  | { kind: "release"; hold: number }
  | { kind: "track"; user: number; amount: number; refund: boolean; key: string | null }
  | { kind: "unknownHold"; release: boolean }
  | { kind: "newUser"; user: number; amount: number }
  | { kind: "negative" };

interface Wave {
  advance: number;
  calls: Call[];
}

const user = fc.nat({ max: USERS - 1 });
const key = fc.option(fc.constantFrom("k0", "k1"), { nil: null, freq: 3 });
const call: fc.Arbitrary<Call> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("reserve" as const), user, amount: fc.constantFrom(50, 300, 700), ttl: fc.constantFrom(MINUTE, 60 * MINUTE), key }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("reserveMulti" as const), user, tokens: fc.constantFrom(100, 400), out: fc.constantFrom(50, 500), key }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("commit" as const), hold: fc.nat(), actual: fc.option(fc.integer({ min: 0, max: 900 }), { nil: null }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("release" as const), hold: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("track" as const), user, amount: fc.integer({ min: 1, max: 400 }), refund: fc.boolean(), key }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("unknownHold" as const), release: fc.boolean() }) },
  // A user the default plan subscribes on first contact; 2000 is refused (overage: reject).
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("newUser" as const), user, amount: fc.constantFrom(10, 2000) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("negative" as const) }) },
);
const wave: fc.Arbitrary<Wave> = fc.record({
  // Mostly no time passes; sometimes past a short hold's expiry, sometimes past the period.
  advance: fc.constantFrom(0, 0, 0, 2 * MINUTE, 40 * 24 * 60 * MINUTE),
  calls: fc.array(call, { minLength: 1, maxLength: 14 }),
});

interface Side {
  meter: Meter;
  clock: ReturnType<typeof clockPool>;
  drop(): Promise<void>;
}
let plain: Side;
let batched: Side;
let runs = 0;
/** op_batch calls the batched side sent (so the test knows batches really formed). */
let batchCalls = 0;

async function side(batch: boolean): Promise<Side> {
  const db = await freshDatabase();
  const clock = clockPool(db.url);
  clock.pool.on("connect", (client) => {
    const c = client as unknown as { query: (...args: unknown[]) => unknown };
    const original = c.query.bind(client);
    c.query = (...args: unknown[]) => {
      const q = args[0];
      if (batch && String(typeof q === "string" ? q : (q as { text?: unknown }).text).includes(".op_batch(")) batchCalls++;
      return original(...args);
    };
  });
  const meter = createMeter({ database: clock.pool, plans: PLANS, defaultPlan: "strict", sweepInterval: 0, batch });
  await meter.migrate();
  return {
    meter,
    clock,
    async drop() {
      await meter.close();
      await clock.pool.end();
      await db.drop();
    },
  };
}

beforeAll(async () => {
  [plain, batched] = await Promise.all([side(false), side(true)]);
});
afterAll(async () => {
  await Promise.all([plain.drop(), batched.drop()]);
});

/** One side's answers to a workload, with its generated ids replaced by their order of appearance. */
async function play(s: Side, waves: Wave[], prefix: string, together: boolean): Promise<unknown[]> {
  const { meter, clock } = s;
  let now = Date.UTC(2026, 2, 10, 12, 0, 0);
  await clock.set(new Date(now));
  const users = Array.from({ length: USERS }, (_, i) => `${prefix}-u${i}`);
  for (const [i, u] of users.entries()) {
    await meter.upsertSubscription({ userId: u, planId: i % 2 === 0 ? "strict" : "lenient", startedAt: new Date(now) });
  }
  const holds: Array<{ id: string; multi: boolean }> = [];
  const answers: unknown[] = [];
  for (const w of waves) {
    now += w.advance;
    await clock.set(new Date(now));
    const known = holds.length;
    const calls = w.calls.map((c) => (): Promise<unknown> => {
      switch (c.kind) {
        case "reserve":
          return meter.reserve(users[c.user]!, "tokens", c.amount, { ttl: c.ttl, ...(c.key ? { idempotencyKey: c.key } : {}) });
        case "reserveMulti":
          return meter.reserve(users[c.user]!, { tokens: c.tokens, out: c.out }, c.key ? { idempotencyKey: c.key } : {});
        case "commit": {
          if (known === 0) return meter.commit("rsv_none");
          const h = holds[c.hold % known]!;
          if (c.actual === null) return meter.commit(h.id);
          return meter.commit(h.id, { actual: h.multi ? { tokens: c.actual, out: Math.floor(c.actual / 2) } : c.actual });
        }
        case "release":
          return known === 0 ? meter.release("rsv_none") : meter.release(holds[c.hold % known]!.id);
        case "track":
          return meter.track(users[c.user]!, c.refund ? "tokens.refund" : "tokens", c.amount, c.key ? { idempotencyKey: c.key } : {});
        case "unknownHold":
          return c.release ? meter.release("rsv_unknown") : meter.commit("rsv_unknown", { actual: 1 });
        case "newUser":
          return meter.track(`${prefix}-new${c.user}`, "tokens", c.amount);
        case "negative":
          return meter.reserve(users[0]!, "tokens", -5);
      }
    });
    const settle = (p: () => Promise<unknown>) =>
      p().then(
        (ok) => ({ ok }),
        (e: unknown) => (e instanceof MeterError ? { error: e.code, message: e.message, details: e.details } : { thrown: String(e) }),
      );
    const got = together ? await Promise.all(calls.map(settle)) : await (async () => {
      const out = [];
      for (const c of calls) out.push(await settle(c));
      return out;
    })();
    got.forEach((g, i) => {
      const r = (g as { ok?: { allowed?: boolean; reservationId?: string } }).ok;
      if (r?.allowed && r.reservationId && !holds.some((h) => h.id === r.reservationId)) {
        holds.push({ id: r.reservationId, multi: w.calls[i]!.kind === "reserveMulti" });
      }
    });
    answers.push(got);
  }
  const usage = await Promise.all([...users, ...users.map((_, i) => `${prefix}-new${i}`)].map(async (u) => {
    const { version: _v, updatedAt: _u, ...rest } = await meter.usage(u);
    return rest;
  }));
  answers.push({ usage, audit: await Promise.all(users.map((u) => meter.audit(u))) });
  // Ids are random per side: name them by first appearance; users by their index.
  let text = JSON.stringify(answers);
  const ids = [...new Set(text.match(/rsv_[0-9a-f]{28,32}/g) ?? [])];
  ids.forEach((id, i) => (text = text.replaceAll(id, `H${i}`)));
  return JSON.parse(text.replaceAll(prefix, "P")) as unknown[];
}

test("a random workload answers the same batched and unbatched: every result, the final usage and the audit", { timeout: 240_000 }, async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(wave, { minLength: 4, maxLength: 12 }), async (waves) => {
      const n = ++runs;
      // The same user ids on both sides (each has its own database): a multi-counter reservation
      // checks its counters in lock-key order, a hash of the user id, so a denial on two counters
      // names the first of them in that order; other ids would name the other counter.
      const [a, b] = await Promise.all([play(plain, waves, `run${n}`, false), play(batched, waves, `run${n}`, true)]);
      expect(b).toEqual(a);
      const last = a[a.length - 1] as { audit: unknown[][] };
      expect(last.audit.flat()).toEqual([]);
    }),
    { numRuns: 6 },
  );
  expect(batchCalls).toBeGreaterThan(6);
});
