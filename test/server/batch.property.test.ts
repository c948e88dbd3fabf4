import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { CreateMeterOptions } from "../../src/server/index.js";
import { play, side, waveOf, type Call, type Scenario, type Side, type Wave } from "../helpers/batchWorkload.js";

/*
 * The same random workload through a batched meter and an unbatched one (each on its own
 * database, same frozen clock): every answer, every final usage and both audits must agree
 * (test/helpers/batchWorkload.ts builds the waves and plays them).
 */

const PLANS: CreateMeterOptions["plans"] = {
  // Anchored at the subscription's start, so when a first contact subscribes a new user shows.
  strict: { limits: { tokens: { quota: 1000, period: "month", anchor: "subscription_start", overage: "reject" }, out: { quota: 600, period: "month", overage: "reject" } } },
  lenient: { limits: { tokens: { quota: 1000, period: "month" }, out: { quota: 600, period: "month" } } },
  // Calendar and no period, limited and unlimited: what the batch's set path (0039) serves.
  roomy: { limits: { tokens: { quota: 5000, period: "none" }, out: { quota: null, period: "month" } } },
  wide: { limits: { tokens: { quota: 20_000, period: "month" }, out: { quota: 10_000, period: "day" } } },
};

const MINUTE = 60_000;
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
const reserve = (user: number, ttl = MINUTE): Call => ({ kind: "reserve", user, amount: 300, ttl, key: null });

/**
 * Hand-picked waves over 12 users for the cases the set path must leave to the functions, next
 * to plain operations of other users in the same batch: a hold past its expiry on the counter,
 * the first operation of a new period (no balance row yet: since 0040 the set path makes it, and
 * these waves compare that too), a commit above the hold, releases,
 * a track sharing a counter with a reserve. Holds are numbered in the order they were granted.
 */
const HAND_PICKED: Wave[] = [
  { advance: 0, calls: range(0, 6).map((u) => reserve(u)) }, // holds 0–5, 1-minute
  {
    advance: 0,
    calls: [
      { kind: "commit", hold: 0, actual: 100 },
      { kind: "commit", hold: 1, actual: null },
      { kind: "commit", hold: 2, actual: 900 },
      { kind: "release", hold: 3 },
      ...range(6, 12).map((u) => reserve(u, 60 * MINUTE)), // holds 6–11
      { kind: "track", user: 6, amount: 10, refund: false, key: null },
    ],
  },
  // Holds 4 and 5 ran out, still open: their counters expire them first.
  { advance: 2 * MINUTE, calls: [reserve(4), reserve(5), reserve(0), reserve(1), { kind: "commit", hold: 6, actual: 250 }, { kind: "release", hold: 7 }] },
  { advance: 40 * 24 * 60 * MINUTE, calls: range(0, 12).map((u) => reserve(u, 60 * MINUTE)) }, // a new month: holds 16–27
  { advance: 0, calls: range(16, 28).map((hold) => ({ kind: "commit" as const, hold, actual: hold % 2 ? null : 120 })) },
];

const SCENARIOS: Array<{ name: string; scenario: Scenario; maxCalls: number; keyEvery: number; numRuns: number; handPicked?: Wave[] }> = [
  {
    // Few users, so a wave's calls meet on one user, one counter and one hold.
    name: "3 users on anchored and calendar plans",
    scenario: { plans: PLANS, defaultPlan: "strict", users: 3, planOf: (i) => ({ planId: i % 2 === 0 ? "strict" : "lenient" }) },
    maxCalls: 14,
    keyEvery: 3,
    numRuns: 6,
  },
  {
    // Many users in a wave, most of them on their own counter, few keys, room under the
    // quotas: the batch runs their plain reserves, commits and releases as set statements,
    // the rest (denials, expiries, first use of a period, keys, shared counters) through the
    // functions.
    name: "12 users on calendar plans, some with custom or unlimited quotas (the set path)",
    scenario: {
      plans: PLANS,
      defaultPlan: "lenient",
      users: 12,
      planOf: (i) => ({
        planId: i % 3 === 0 ? "roomy" : i % 3 === 1 ? "wide" : "lenient",
        ...(i % 4 === 1 ? { customLimits: { tokens: { quota: i % 8 === 1 ? null : 1500 } } } : {}),
      }),
    },
    maxCalls: 30,
    keyEvery: 8,
    numRuns: 20,
    handPicked: HAND_PICKED,
  },
];

describe.each(SCENARIOS)("$name", ({ scenario, maxCalls, keyEvery, numRuns, handPicked }) => {
  let plain: Side;
  let batched: Side;
  let runs = 0;

  beforeAll(async () => {
    [plain, batched] = await Promise.all([side(scenario, false), side(scenario, true)]);
  });
  afterAll(async () => {
    await Promise.all([plain.drop(), batched.drop()]);
  });

  test("a random workload answers the same batched and unbatched: every result, the final usage and the audit", { timeout: 240_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(waveOf(scenario.users, maxCalls, keyEvery), { minLength: 4, maxLength: 12 }), async (waves) => {
        const n = ++runs;
        // The same user ids on both sides (each has its own database): a multi-counter reservation
        // checks its counters in lock-key order, a hash of the user id, so a denial on two counters
        // names the first of them in that order; other ids would name the other counter.
        const [a, b] = await Promise.all([play(plain, scenario, waves, `run${n}`, false), play(batched, scenario, waves, `run${n}`, true)]);
        expect(b).toEqual(a);
        const last = a[a.length - 1] as { audit: unknown[][] };
        expect(last.audit.flat()).toEqual([]);
      }),
      { numRuns },
    );
    expect(batched.batchCalls).toBeGreaterThan(numRuns);
    // Keyed requests (HTTP Idempotency-Keys) rode the batches too (0041).
    expect(batched.claimsBatched).toBeGreaterThan(0);
  });

  if (handPicked) {
    test("hand-picked waves (expiries, a new period, overage, releases) answer the same batched and unbatched", async () => {
      const n = ++runs;
      const before = batched.batchCalls;
      const [a, b] = await Promise.all([play(plain, scenario, handPicked, `run${n}`, false), play(batched, scenario, handPicked, `run${n}`, true)]);
      expect(b).toEqual(a);
      expect(batched.batchCalls - before).toBe(handPicked.length);
    });
  }
});
