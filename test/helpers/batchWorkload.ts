import fc from "fast-check";
import { MeterError } from "../../src/core/errors.js";
import { createMeter, type CreateMeterOptions, type Meter } from "../../src/server/index.js";
import { claimedMeter } from "../../src/server/http/claimedMeter.js";
import { batchOps } from "./batchOps.js";
import { clockPool } from "./clock.js";
import { freshDatabase } from "./db.js";

/*
 * A random workload for comparing a batched meter with an unbatched one (each on its own
 * database, same frozen clock). The workload comes in waves. The unbatched meter runs a wave's
 * calls one after another; the batched one gets the whole wave at once, so all but its first
 * call share one op_batch, in arrival order. Calls in a wave may touch the same user and the
 * same hold (double commits, repeated idempotency keys), so the batch meets every case inside
 * one transaction. A call may come as a keyed `/v1` request would (`http`: its Idempotency-Key,
 * claimed in the statement that writes, and on reserve and track also the ledger's key), so
 * the batch meets claims too: repeats, a key reused with another request, a failure that frees
 * its key. Used by test/server/batch.property.test.ts.
 */

const MINUTE = 60_000;

export type Call =
  | { kind: "reserve"; user: number; amount: number; ttl: number; key: string | null; http?: string | null }
  | { kind: "reserveMulti"; user: number; tokens: number; out: number; key: string | null }
  | { kind: "commit"; hold: number; actual: number | null; http?: string | null }
  | { kind: "release"; hold: number; http?: string | null }
  | { kind: "track"; user: number; amount: number; refund: boolean; key: string | null; http?: string | null }
  | { kind: "unknownHold"; release: boolean }
  | { kind: "newUser"; user: number; amount: number }
  | { kind: "negative" };

export interface Wave {
  advance: number;
  calls: Call[];
}

/** One call of a workload over `users` users; one in `keyEvery` calls that may carry an idempotency key does. */
function callOf(users: number, keyEvery: number): fc.Arbitrary<Call> {
  const user = fc.nat({ max: users - 1 });
  const key = fc.oneof({ weight: keyEvery - 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom("k0", "k1") });
  // An HTTP Idempotency-Key: few of them, so requests meet on one (same or other request).
  const http = fc.oneof({ weight: keyEvery - 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom("h0", "h1", "h2") });
  return fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("reserve" as const), user, amount: fc.constantFrom(50, 300, 700), ttl: fc.constantFrom(MINUTE, 60 * MINUTE), key, http }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("reserveMulti" as const), user, tokens: fc.constantFrom(100, 400), out: fc.constantFrom(50, 500), key }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("commit" as const), hold: fc.nat(), actual: fc.option(fc.integer({ min: 0, max: 900 }), { nil: null }), http }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("release" as const), hold: fc.nat(), http }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("track" as const), user, amount: fc.integer({ min: 1, max: 400 }), refund: fc.boolean(), key, http }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("unknownHold" as const), release: fc.boolean() }) },
  // A user the default plan subscribes on first contact; 2000 is refused (overage: reject).
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("newUser" as const), user, amount: fc.constantFrom(10, 2000) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("negative" as const) }) },
  );
}

/** Waves of up to `maxCalls` calls over `users` users, each wave after some time passed. */
export function waveOf(users: number, maxCalls: number, keyEvery: number): fc.Arbitrary<Wave> {
  return fc.record({
    // Mostly no time passes; sometimes past a short hold's expiry, sometimes past the period.
    advance: fc.constantFrom(0, 0, 0, 2 * MINUTE, 40 * 24 * 60 * MINUTE),
    calls: fc.array(callOf(users, keyEvery), { minLength: 1, maxLength: maxCalls }),
  });
}

/** The plans, the users and their plans a workload runs with. */
export interface Scenario {
  plans: CreateMeterOptions["plans"];
  /** The plan a first contact gets (the `newUser` calls). */
  defaultPlan: string;
  users: number;
  /** The plan of user `i`, and any custom limits. */
  planOf(i: number): { planId: string; customLimits?: Record<string, { quota: number | null }> };
}

export interface Side {
  meter: Meter;
  clock: ReturnType<typeof clockPool>;
  /** op_batch calls this side sent (so a test knows batches really formed). */
  batchCalls: number;
  /** Operations that rode those batches with an HTTP Idempotency-Key to claim. */
  claimsBatched: number;
  drop(): Promise<void>;
}

/** A meter on its own fresh database with a settable clock, batched or not. */
export async function side(scenario: Scenario, batch: boolean): Promise<Side> {
  const db = await freshDatabase();
  const clock = clockPool(db.url);
  clock.pool.on("connect", (client) => {
    const c = client as unknown as { query: (...args: unknown[]) => unknown };
    const original = c.query.bind(client);
    c.query = (...args: unknown[]) => {
      const ops = batch ? batchOps(args) : null;
      if (ops) {
        s.batchCalls++;
        s.claimsBatched += ops.filter((op) => op.claim !== undefined).length;
      }
      return original(...args);
    };
  });
  const meter = createMeter({ database: clock.pool, plans: scenario.plans, defaultPlan: scenario.defaultPlan, sweepInterval: 0, batch });
  await meter.migrate();
  const s: Side = {
    meter,
    clock,
    batchCalls: 0,
    claimsBatched: 0,
    async drop() {
      await meter.close();
      await clock.pool.end();
      await db.drop();
    },
  };
  return s;
}

/** One side's answers to a workload, with its generated ids replaced by their order of appearance. */
export async function play(s: Side, scenario: Scenario, waves: Wave[], prefix: string, together: boolean): Promise<unknown[]> {
  const { meter, clock } = s;
  let now = Date.UTC(2026, 2, 10, 12, 0, 0);
  await clock.set(new Date(now));
  const users = Array.from({ length: scenario.users }, (_, i) => `${prefix}-u${i}`);
  for (const [i, u] of users.entries()) {
    await meter.upsertSubscription({ userId: u, ...scenario.planOf(i), startedAt: new Date(now) });
  }
  const holds: Array<{ id: string; multi: boolean }> = [];
  const answers: unknown[] = [];
  for (const w of waves) {
    now += w.advance;
    await clock.set(new Date(now));
    const known = holds.length;
    const calls = w.calls.map((c) => (): Promise<unknown> => {
      // A keyed /v1 request: its key claimed for this request (what it is and whom it is for),
      // and, on reserve and track, also the ledger's key, as the routes pass it.
      const http = "http" in c && c.http ? c.http : null;
      const target = (c.kind === "commit" || c.kind === "release") && known > 0 ? holds[c.hold % known]!.id : null;
      const meter = http ? claimedMeter(s.meter, { key: `${prefix}-${http}`, fingerprint: JSON.stringify({ ...c, hold: undefined, target, user: "user" in c ? users[c.user] : null }) }) : s.meter;
      const key = http ? `${prefix}-${http}` : "key" in c ? c.key : null;
      switch (c.kind) {
        case "reserve":
          return meter.reserve(users[c.user]!, "tokens", c.amount, { ttl: c.ttl, ...(key ? { idempotencyKey: key } : {}) });
        case "reserveMulti":
          return meter.reserve(users[c.user]!, { tokens: c.tokens, out: c.out }, c.key ? { idempotencyKey: c.key } : {});
        case "commit": {
          if (known === 0) return meter.commit("rsv_none");
          const h = holds[c.hold % known]!;
          if (c.actual === null) return meter.commit(h.id);
          return meter.commit(h.id, { actual: h.multi ? { tokens: c.actual, out: Math.floor(c.actual / 2) } : c.actual });
        }
        case "release":
          return meter.release(target ?? "rsv_none");
        case "track":
          return meter.track(users[c.user]!, c.refund ? "tokens.refund" : "tokens", c.amount, key ? { idempotencyKey: key } : {});
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

