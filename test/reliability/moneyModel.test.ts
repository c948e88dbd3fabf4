import fc from "fast-check";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import type { MeterError } from "../../src/core/errors.js";
import { clockPool } from "../helpers/clock.js";
import { freshDatabase } from "../helpers/db.js";
import { LedgerModel } from "../helpers/ledger-model.js";
import { countFailures, recordFigures } from "./harness/report.js";
import { SIZES } from "./harness/sizes.js";
import { paidSession, refundedCharge, stripeEvent, stripeTest, type StripeTest } from "../stripe/helpers.js";

// The money rules over several months, against the reference model: holds, commits (repeated
// with the same or other numbers), releases, expiries, tracks, refunds with and without a
// reservation id, promo grants, packs bought through the Stripe webhook, their refunds and
// disputes (the same SQL path as real deliveries), the debts those leave, month rollovers.
// After every step: the Usage equals the model's, audit() is clean (which also proves no debt
// was collected twice and no refund exceeded its hold), and the database agrees on both.

type Op =
  | { kind: "reserve"; amount: number; ttl: number }
  | { kind: "commit"; hold: number; actual: number }
  | { kind: "release"; hold: number }
  | { kind: "track"; amount: number }
  | { kind: "refund"; amount: number }
  | { kind: "refundHold"; hold: number; amount: number }
  | { kind: "grant"; amount: number; expiresIn: number | null }
  | { kind: "buy"; credits: number; paid: number }
  | { kind: "refundPack"; pack: number; quarters: number }
  | { kind: "dispute"; pack: number }
  | { kind: "advance"; ms: number };

// A small allowance, so packs get spent and their refunds leave debts.
const QUOTA = 300;
const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const rec = <K extends string, T>(kind: K, fields: { [P in keyof T]: fc.Arbitrary<T[P]> }) =>
  fc.record({ kind: fc.constant(kind), ...fields } as never) as unknown as fc.Arbitrary<{ kind: K } & T>;
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: rec("reserve", { amount: fc.integer({ min: 1, max: 600 }), ttl: fc.integer({ min: 1, max: 24 * 60 - 1 }).map((m) => m * MINUTE + 500) }) },
  { weight: 4, arbitrary: rec("commit", { hold: fc.nat(), actual: fc.integer({ min: 0, max: 700 }) }) },
  { weight: 1, arbitrary: rec("release", { hold: fc.nat() }) },
  { weight: 3, arbitrary: rec("track", { amount: fc.integer({ min: 1, max: 800 }) }) },
  { weight: 1, arbitrary: rec("refund", { amount: fc.integer({ min: 1, max: 300 }) }) },
  { weight: 2, arbitrary: rec("refundHold", { hold: fc.nat(), amount: fc.integer({ min: 1, max: 500 }) }) },
  { weight: 1, arbitrary: rec("grant", { amount: fc.integer({ min: 1, max: 500 }), expiresIn: fc.option(fc.integer({ min: 1, max: 60 * 24 * 60 }).map((m) => m * MINUTE + 250), { nil: null }) }) },
  { weight: 3, arbitrary: rec("buy", { credits: fc.integer({ min: 100, max: 1500 }), paid: fc.integer({ min: 50, max: 2000 }) }) },
  { weight: 3, arbitrary: rec("refundPack", { pack: fc.nat(), quarters: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: rec("dispute", { pack: fc.nat() }) },
  { weight: 2, arbitrary: rec("advance", { ms: fc.integer({ min: 1, max: 20 * 24 * 60 }).map((m) => m * MINUTE) }) },
);

let db: { url: string; drop: () => Promise<void> };
let clock: ReturnType<typeof clockPool>;
let t: StripeTest;
let runs = 0;
let steps = 0;
/** What the sequences exercised, printed at the end (docs/reliability.md quotes a run). */
const seen = { debts: 0, debtCollections: 0, cappedRefunds: 0, refusedRefunds: 0, commitConflicts: 0, rollovers: 0 };

beforeAll(async () => {
  db = await freshDatabase();
  clock = clockPool(db.url);
  t = await stripeTest({
    meter: {
      database: clock.pool,
      plans: {
        strict: { limits: { tokens: { quota: QUOTA, period: "month", overage: "reject" } } },
        lenient: { limits: { tokens: { quota: QUOTA, period: "month", overage: "record" } } },
      },
      meters: { "llm.tokens": { counter: "tokens" } },
      defaultPlan: "strict",
    },
  });
});
const failures = countFailures(afterEach);
afterAll(async () => {
  expect(await t.meter.audit()).toEqual([]);
  recordFigures("money rules vs the reference model", { operations: steps, violations: failures.n, sequences: runs, ...seen });
  await t.cleanup();
  await clock.pool.end();
  await db.drop();
});

const outcome = (p: Promise<unknown>) => p.then(() => "ok", (e: MeterError) => (e.code === "conflict" ? String(e.details.reason) : `error ${e.code}`));

async function run(ops: Op[], policy: "strict" | "lenient") {
  const user = `money-${policy}-${++runs}`;
  const start = Date.UTC(2026, 0, 20, 8, 0, 0);
  const model = new LedgerModel(QUOTA, policy === "strict" ? "reject" : "record", start);
  await clock.set(new Date(start));
  await t.meter.upsertSubscription({ userId: user, planId: policy, startedAt: new Date(start) });
  const holds: string[] = [];
  const packs: Array<{ pi: string; paid: number; refunded: number }> = [];
  // A clawback takes credits whatever is held against them (Stripe does not ask): from then on
  // open holds may exceed what is left, and only the model comparison applies.
  let clawed = false;
  for (const o of ops) {
    steps++;
    await clock.set(new Date(model.now));
    switch (o.kind) {
      case "advance":
        if (new Date(model.now).getUTCMonth() !== new Date(model.now + o.ms).getUTCMonth()) seen.rollovers++;
        model.now += o.ms;
        await clock.set(new Date(model.now));
        break;
      case "reserve": {
        const r = await t.meter.reserve(user, "llm.tokens", o.amount, { ttl: o.ttl });
        const id = r.allowed ? r.reservationId : "";
        expect(r.allowed).toBe(model.reserve(id, o.amount, o.ttl));
        if (r.allowed) holds.push(id);
        break;
      }
      case "commit":
      case "release": {
        if (holds.length === 0) break;
        const id = holds[o.hold % holds.length]!;
        const release = o.kind === "release";
        const h = model.holds.find((x) => x.id === id)!;
        // Strict plans never commit more than the hold, so used + held <= quota + granted holds throughout.
        let actual = o.kind === "commit" ? (policy === "strict" ? Math.min(o.actual, h.amount) : o.actual) : 0;
        // Half the repeated commits repeat the first numbers exactly (a retry), half differ.
        if (o.kind === "commit" && h.actual !== undefined && o.actual % 2 === 0) actual = h.actual;
        const expected = model.resolve(id, release, actual);
        const got = await outcome(release ? t.meter.release(id) : t.meter.commit(id, { actual }));
        expect(got).toBe(expected === "repeat" ? "ok" : expected);
        if (!release && expected === "committed") seen.commitConflicts++;
        break;
      }
      case "track": {
        const ok = await t.meter.track(user, "llm.tokens", o.amount).then(() => true, (e: MeterError) => (e.code === "limit_reached" ? false : Promise.reject(e)));
        expect(ok).toBe(model.track(o.amount));
        break;
      }
      case "refund": {
        const r = await t.meter.track(user, "llm.tokens.refund", o.amount);
        expect(0 - r.amount).toBe(model.refund(o.amount));
        break;
      }
      case "refundHold": {
        if (holds.length === 0) break;
        const id = holds[o.hold % holds.length]!;
        const expected = model.refundHold(id, o.amount);
        if (typeof expected === "string") seen.refusedRefunds++;
        else if (expected < o.amount) seen.cappedRefunds++;
        const got = await t.meter.track(user, "llm.tokens.refund", o.amount, { reservationId: id }).then(
          (r) => 0 - r.amount,
          (e: MeterError) => (e.code === "conflict" ? String(e.details.reason) : `error ${e.code}`),
        );
        expect(got).toBe(expected);
        break;
      }
      case "grant": {
        const g = await t.meter.grant(user, "tokens", o.amount, o.expiresIn === null ? {} : { expiresAt: new Date(model.now + o.expiresIn) });
        const paid = model.grant(g.grantId, o.amount, o.expiresIn);
        expect(g.debtPaid ?? 0).toBe(paid);
        if (paid > 0) seen.debtCollections++;
        break;
      }
      case "buy": {
        const session = paidSession(user, { credits: o.credits, amount: o.paid });
        expect(await t.deliver(stripeEvent("checkout.session.completed", session))).toEqual({ received: true });
        if (model.buy(session.payment_intent, o.credits, o.paid) > 0) seen.debtCollections++;
        packs.push({ pi: session.payment_intent, paid: o.paid, refunded: 0 });
        break;
      }
      case "refundPack": {
        if (packs.length === 0) break;
        const p = packs[o.pack % packs.length]!;
        // Stripe reports the cumulative amount refunded; it never goes down.
        p.refunded = Math.max(p.refunded, Math.ceil((p.paid * o.quarters) / 4));
        await t.deliver(stripeEvent("charge.refunded", refundedCharge(p.pi, p.refunded, p.paid)));
        if (model.clawback(p.pi, p.refunded, 0) > 0) seen.debts++;
        clawed = true;
        break;
      }
      case "dispute": {
        if (packs.length === 0) break;
        const p = packs[o.pack % packs.length]!;
        await t.deliver(
          stripeEvent("charge.dispute.created", { id: `dp_${p.pi}`, object: "dispute", amount: p.paid, charge: `ch_${p.pi}`, payment_intent: p.pi, status: "needs_response" }),
        );
        if (model.clawback(p.pi, 0, p.paid) > 0) seen.debts++;
        clawed = true;
        break;
      }
    }
    const c = (await t.meter.usage(user)).counters[0]!;
    const m = model.usage();
    const debt = model.debt();
    expect({ quota: c.quota, used: c.used, held: c.held, granted: c.granted, remaining: c.remaining, periodStart: c.periodStart, debt: c.debt ?? 0 }).toEqual({ ...m, debt });
    if (policy === "strict" && !clawed) expect(c.used + c.held).toBeLessThanOrEqual(c.quota! + c.granted);
    // Audit: projections match the entries, no debt collected twice, no refund beyond its hold.
    expect(await t.meter.audit(user)).toEqual([]);
  }
  // The same two properties, read straight from the tables at the end of the sequence.
  const s = t.meter.internals.schema;
  const { rows } = await t.meter.internals.pool.query<{ over_debts: string; over_holds: string }>(
    `SELECT (SELECT count(*) FROM ${s}.debts d WHERE d.user_id = $1 AND
              (SELECT coalesce(sum(amount), 0) FROM ${s}.entries e WHERE e.kind = 'settle' AND e.metadata->>'debtId' = d.id) > d.amount) AS over_debts,
            (SELECT count(*) FROM ${s}.holds h WHERE h.user_id = $1 AND h.refunded > coalesce((h.result->>'committed')::bigint, 0)) AS over_holds`,
    [user],
  );
  expect(rows[0]).toEqual({ over_debts: "0", over_holds: "0" });
  for (const h of model.holds) expect(h.refunded).toBeLessThanOrEqual(h.committed);
}

describe("the money rules match the reference model over several months", () => {
  test("a plan that rejects overage: packs, refunds, disputes, debts and holds over month rollovers", async () => {
    await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 10, maxLength: 60 }), (ops) => run(ops, "strict")), { numRuns: SIZES.moneyRuns });
  }, Math.max(SIZES.fuzzTimeout, 120_000));

  test("a plan that records overage: the same, with commits and tracks past the balance", async () => {
    await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 10, maxLength: 60 }), (ops) => run(ops, "lenient")), { numRuns: SIZES.moneyRuns });
  }, Math.max(SIZES.fuzzTimeout, 120_000));
});
