import fc from "fast-check";
import { afterAll, afterEach, beforeAll, describe, expect, test as vitestTest } from "vitest";
import { MeterError } from "../../src/core/errors.js";
import { testMeter, type TestMeter } from "../helpers/meter.js";
import { amountArb, idArb, optionsArb } from "./harness/hostile.js";
import { countFailures, recordFigures } from "./harness/report.js";
import { SIZES } from "./harness/sizes.js";
import { writeSnapshot } from "./harness/snapshot.js";
import { internalsOf } from "../../src/server/internals.js";

// Every public server function, called with random and adversarial arguments: it answers, or
// refuses with a documented client error (never `internal`, never a raw error), and a refusal
// writes nothing.
const failures = countFailures(afterEach);
let t: TestMeter;
const users = ["fz-pro", "fz-free", "fz-none"];
const holds: string[] = [];
const CLIENT_ERRORS = ["invalid_request", "not_found", "conflict", "limit_reached"];
const figures = { calls: 0, answered: 0, refused: {} as Record<string, number> };

beforeAll(async () => {
  t = await testMeter({ browserTokenSecret: "bt_fuzz_0123456789abcdefghijklmnopqrstuv" });
  await t.meter.upsertSubscription({ userId: "fz-pro", planId: "pro" });
  await t.meter.upsertSubscription({ userId: "fz-free", planId: "free" });
  for (const amount of [10, 20, 30]) {
    const r = await t.meter.reserve("fz-pro", "llm.tokens", amount, { ttl: 86_400_000 });
    if (r.allowed) holds.push(r.reservationId);
  }
  await t.meter.commit(holds[1]!, { actual: 5 });
  await t.meter.release(holds[2]!);
});
afterAll(async () => {
  recordFigures("fuzz: public server functions", { operations: figures.calls, answered: figures.answered, errorsByCode: figures.refused, violations: failures.n });
  expect(await t.meter.audit()).toEqual([]);
  await t.cleanup();
});

const ids = () => [...users, ...holds, "llm.tokens", "tokens", "credits", "images", "llm.cost", "llm.tokens.refund", "pro", "free", "lifetime"];

/** Calls `fn`; a refusal must be a documented client error that wrote nothing. */
async function attempt(label: string, fn: () => unknown) {
  const before = await writeSnapshot(internalsOf(t.meter).pool);
  figures.calls++;
  try {
    await fn();
    figures.answered++;
  } catch (err) {
    if (!(err instanceof MeterError)) throw new Error(`${label}: threw a non-MeterError ${String(err)}`);
    figures.refused[err.code] = (figures.refused[err.code] ?? 0) + 1;
    if (!CLIENT_ERRORS.includes(err.code)) throw new Error(`${label}: answered ${err.code}: ${err.message} (cause: ${String((err.cause as Error)?.message)})`);
    expect(await writeSnapshot(internalsOf(t.meter).pool), `${label} was refused (${err.code}) but wrote`).toBe(before);
  }
}

const run = (p: fc.IAsyncProperty<never>) => fc.assert(p, { numRuns: SIZES.fuzzRuns });
const test = (name: string, fn: () => Promise<unknown>) => vitestTest(name, fn, SIZES.fuzzTimeout);
const userArb = () => idArb(ids());

describe("hostile arguments to every public server function", () => {
  test("reserve", () =>
    run(fc.asyncProperty(userArb(), userArb(), amountArb, optionsArb(ids()), (u, k, a, o) =>
      attempt(`reserve(${fmt(u)}, ${fmt(k)}, ${fmt(a)}, ${fmt(o)})`, () => t.meter.reserve(u as string, k as string, a as number, o as never)),
    ) as never));
  test("commit and release", () =>
    run(fc.asyncProperty(userArb(), optionsArb(ids()), fc.boolean(), (id, o, rel) =>
      attempt(`${rel ? "release" : "commit"}(${fmt(id)}, ${fmt(o)})`, () => (rel ? t.meter.release(id as string) : t.meter.commit(id as string, o as never))),
    ) as never));
  test("track and refunds", () =>
    run(fc.asyncProperty(userArb(), userArb(), amountArb, optionsArb(ids()), (u, k, a, o) =>
      attempt(`track(${fmt(u)}, ${fmt(k)}, ${fmt(a)}, ${fmt(o)})`, () => t.meter.track(u as string, k as string, a as number, o as never)),
    ) as never));
  test("grant and adjust", () =>
    run(fc.asyncProperty(userArb(), userArb(), amountArb, optionsArb(ids()), fc.boolean(), (u, k, a, o, adj) =>
      attempt(`${adj ? "adjust" : "grant"}(${fmt(u)}, ${fmt(k)}, ${fmt(a)}, ${fmt(o)})`, () =>
        adj ? t.meter.adjust(u as string, k as string, a as number, o as never) : t.meter.grant(u as string, k as string, a as number, o as never),
      ),
    ) as never));
  test("usage, audit and sweepExpired", () =>
    run(fc.asyncProperty(userArb(), amountArb, fc.integer({ min: 0, max: 2 }), (u, n, which) =>
      attempt(`${["usage", "audit", "sweepExpired"][which]}(${fmt(which === 2 ? n : u)})`, () =>
        which === 0 ? t.meter.usage(u as string) : which === 1 ? t.meter.audit(u as string) : t.meter.sweepExpired(n as number),
      ),
    ) as never));
  test("upsertSubscription", () =>
    run(fc.asyncProperty(
      fc.oneof(
        fc.record({ userId: userArb(), planId: userArb(), customLimits: fc.oneof(optionsArb(ids()), fc.dictionary(fc.constantFrom("tokens", "credits", "nope", "__proto__"), fc.record({ quota: amountArb }))), startedAt: fc.oneof(fc.date({ noInvalidDate: false }), fc.string(), fc.constant(undefined)) }, { requiredKeys: [] }),
        fc.constantFrom(undefined, null, "fz-pro", 1, []),
      ),
      (input) => attempt(`upsertSubscription(${fmt(input)})`, () => t.meter.upsertSubscription(input as never)),
    ) as never));
  test("browserToken", () =>
    run(fc.asyncProperty(userArb(), optionsArb(ids()), (u, o) => attempt(`browserToken(${fmt(u)}, ${fmt(o)})`, () => t.meter.browserToken(u as string, o as never))) as never));

  test("cases the long run found are refused as client errors: lone surrogates in metadata, a sweep limit beyond int", async () => {
    for (const metadata of [{ lone: "\ud800" }, { "\udc00key": 1 }, { nested: [{ x: "a\udfffb" }] }]) {
      await attempt("track with lone surrogates", () => t.meter.track("fz-pro", "llm.tokens.refund", 1, { metadata }));
      await attempt("reserve with lone surrogates", () => t.meter.reserve("fz-pro", "llm.tokens", 1, { metadata }));
      await attempt("grant with lone surrogates", () => t.meter.grant("fz-pro", "tokens", 1, { metadata }));
      await expect(t.meter.track("fz-pro", "llm.tokens", 1, { metadata })).rejects.toMatchObject({ code: "invalid_request", details: { field: "metadata" } });
    }
    // A well-formed pair is fine.
    await t.meter.track("fz-pro", "llm.tokens", 1, { metadata: { emoji: "🙂" } });
    await attempt("sweepExpired(2^53 - 1)", () => t.meter.sweepExpired(2 ** 53 - 1));
    expect(await t.meter.sweepExpired(2 ** 53 - 1)).toBe(0);
    await attempt("browserToken with null options", () => t.meter.browserToken("fz-pro", null as never));
  });

  test("prototype keys are unknown plans, meters and counters, not a crash", async () => {
    for (const key of ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf"]) {
      await expect(t.meter.reserve("fz-pro", key, 1)).rejects.toMatchObject({ code: "not_found" });
      await expect(t.meter.track("fz-pro", `${key}.refund`, 1)).rejects.toMatchObject({ code: "not_found" });
      await expect(t.meter.grant("fz-pro", key, 1)).rejects.toMatchObject({ code: "not_found" });
      await expect(t.meter.upsertSubscription({ userId: "fz-proto", planId: key })).rejects.toMatchObject({ code: "not_found" });
      await expect(t.meter.upsertSubscription({ userId: "fz-pro", planId: "pro", customLimits: { [key]: { quota: 1 } } })).rejects.toMatchObject({ code: "not_found" });
      await expect(t.meter.reserve("fz-pro", "llm.cost", 1, { model: key })).rejects.toMatchObject({ code: expect.stringMatching(/not_found|invalid_request/) });
    }
  });
});

function fmt(v: unknown): string {
  try {
    const s = typeof v === "number" || v === undefined ? String(v) : JSON.stringify(v);
    return s.length > 120 ? s.slice(0, 120) + "…" : s;
  } catch {
    return typeof v;
  }
}
