import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { MeterError } from "../../src/core/errors.js";
import { testMeter, type TestMeter } from "../helpers/meter.js";
import { internalsOf } from "../../src/server/internals.js";

let t: TestMeter;
let holdId: string;

async function rowCounts() {
  const { rows } = await internalsOf(t.meter).pool.query<{ n: string }>(
    `SELECT (SELECT count(*) FROM meterkit.entries) || '/' || (SELECT count(*) FROM meterkit.holds) || '/' ||
            (SELECT count(*) FROM meterkit.grants) || '/' || (SELECT count(*) FROM meterkit.subscriptions) || '/' ||
            (SELECT coalesce(sum(used), 0) FROM meterkit.balances) || '/' || (SELECT count(*) FROM meterkit.idempotency) AS n`,
  );
  return rows[0]!.n;
}

beforeAll(async () => {
  t = await testMeter();
  await t.meter.upsertSubscription({ userId: "alice", planId: "pro" });
  const r = await t.meter.reserve("alice", "llm.tokens", 100);
  if (!r.allowed) throw new Error("setup reserve denied");
  holdId = r.reservationId;
});
afterAll(async () => {
  await t.cleanup();
});

const badAmounts: Array<[string, unknown]> = [
  ["negative", -1],
  ["zero", 0],
  ["fractional", 1.5],
  ["NaN", Number.NaN],
  ["infinite", Number.POSITIVE_INFINITY],
  ["above 2^53 - 1", 2 ** 53],
  ["1e308", 1e308],
  ["a numeric string", "10"],
  ["null", null],
  ["an object", { amount: 1 }],
  ["a bigint", 10n],
];
const badIds: Array<[string, unknown]> = [
  ["empty", ""],
  ["a number", 42],
  ["too long", "x".repeat(256)],
  ["with a NUL", "a\u0000b"],
  ["a lone surrogate", "a\ud800"],
  ["undefined", undefined],
];

type Case = [name: string, run: () => Promise<unknown>, code: string];
const m = () => t.meter;

const cases: Case[] = [
  ...badAmounts.map(([n, v]): Case => [`reserve with a ${n} amount`, () => m().reserve("alice", "llm.tokens", v as number), "invalid_request"]),
  ...badAmounts.map(([n, v]): Case => [`track with a ${n} amount`, () => m().track("alice", "llm.tokens", v as number), "invalid_request"]),
  ...badAmounts.map(([n, v]): Case => [`grant with a ${n} amount`, () => m().grant("alice", "tokens", v as number), "invalid_request"]),
  ...badAmounts
    .filter(([n]) => n !== "zero" && n !== "negative")
    .map(([n, v]): Case => [`adjust with a ${n} delta`, () => m().adjust("alice", "tokens", v as number, { reason: "x" }), "invalid_request"]),
  ...badAmounts
    .filter(([n]) => n !== "zero")
    .map(([n, v]): Case => [`commit with a ${n} actual`, () => m().commit(holdId, { actual: v as number }), "invalid_request"]),
  ...badIds.map(([n, v]): Case => [`reserve for a user id that is ${n}`, () => m().reserve(v as string, "llm.tokens", 1), "invalid_request"]),
  ...badIds.map(([n, v]): Case => [`commit of a reservation id that is ${n}`, () => m().commit(v as string), "invalid_request"]),
  ...badIds.map(([n, v]): Case => [`release of a reservation id that is ${n}`, () => m().release(v as string), "invalid_request"]),
  ...badIds.map(([n, v]): Case => [`usage of a user id that is ${n}`, () => m().usage(v as string), "invalid_request"]),
  ["reserve for an unknown user (no default plan)", () => m().reserve("nobody", "llm.tokens", 1), "not_found"],
  ["track for an unknown user", () => m().track("nobody", "llm.tokens", 1), "not_found"],
  ["grant for an unknown user", () => m().grant("nobody", "tokens", 1), "not_found"],
  ["usage of an unknown user", () => m().usage("nobody"), "not_found"],
  ["reserve on an unknown meter", () => m().reserve("alice", "llm.nope", 1), "not_found"],
  ["reserve on a .refund key", () => m().reserve("alice", "llm.tokens.refund", 1), "invalid_request"],
  ["grant on an unknown counter", () => m().grant("alice", "nope", 1), "not_found"],
  ["adjust on an unknown counter", () => m().adjust("alice", "nope", 1, { reason: "x" }), "not_found"],
  ["adjust without a reason", () => m().adjust("alice", "tokens", 1, {} as { reason: string }), "invalid_request"],
  ["adjust by zero", () => m().adjust("alice", "tokens", 0, { reason: "x" }), "invalid_request"],
  ["commit of an unknown reservation", () => m().commit("rsv_unknown"), "not_found"],
  ["release of an unknown reservation", () => m().release("rsv_unknown"), "not_found"],
  ["commit with both actual and usage", () => m().commit(holdId, { actual: 1, usage: { inputTokens: 1, outputTokens: 1 } }), "invalid_request"],
  ["commit with negative token usage", () => m().commit(holdId, { usage: { inputTokens: -1, outputTokens: 1 } }), "invalid_request"],
  ["commit with cached tokens above input tokens", () => m().commit(holdId, { usage: { inputTokens: 1, cachedInputTokens: 2, outputTokens: 1 } }), "invalid_request"],
  ["reserve with a ttl of zero", () => m().reserve("alice", "llm.tokens", 1, { ttl: 0 }), "invalid_request"],
  ["reserve with a ttl above a day", () => m().reserve("alice", "llm.tokens", 1, { ttl: 86_400_001 }), "invalid_request"],
  ["reserve with array metadata", () => m().reserve("alice", "llm.tokens", 1, { metadata: [] as unknown as Record<string, unknown> }), "invalid_request"],
  ["reserve with metadata nested thousands of levels deep", () => {
    let deep: Record<string, unknown> = { a: 1 };
    for (let i = 0; i < 2_500; i++) deep = { a: deep }; // ~12.5 kB: under the size limit
    return m().reserve("alice", "llm.tokens", 1, { metadata: deep });
  }, "invalid_request"],
  ["track with a NUL in the model name", () => m().track("alice", "llm.tokens", 1, { model: "\u0000" }), "invalid_request"],
  ["grant with a lone surrogate in the source", () => m().grant("alice", "tokens", 1, { source: "\ud800" }), "invalid_request"],
  ["adjust with a NUL in the reason", () => m().adjust("alice", "tokens", 1, { reason: "a\u0000b" }), "invalid_request"],
  ["reserve with huge metadata", () => m().reserve("alice", "llm.tokens", 1, { metadata: { x: "y".repeat(20_000) } }), "invalid_request"],
  ["reserve with an empty idempotency key", () => m().reserve("alice", "llm.tokens", 1, { idempotencyKey: "" }), "invalid_request"],
  ["reserve on a priced meter without a model", () => m().reserve("alice", "llm.cost", 1000), "invalid_request"],
  ["reserve on a priced meter with an unknown model", () => m().reserve("alice", "llm.cost", 1000, { model: "gpt-unknown" }), "not_found"],
  ["track on a priced meter with an unknown model", () => m().track("alice", "llm.cost", 1000, { model: "gpt-unknown" }), "not_found"],
  ["grant with an invalid expiry", () => m().grant("alice", "tokens", 1, { expiresAt: "not a date" }), "invalid_request"],
  ["subscription to an unknown plan", () => m().upsertSubscription({ userId: "bob", planId: "gold" }), "not_found"],
  ["subscription with a custom limit for a counter the plan lacks", () => m().upsertSubscription({ userId: "bob", planId: "free", customLimits: { credits: { quota: 5 } } }), "not_found"],
  ["subscription with a negative custom quota", () => m().upsertSubscription({ userId: "bob", planId: "free", customLimits: { tokens: { quota: -5 } } }), "invalid_request"],
  ["subscription with an invalid start", () => m().upsertSubscription({ userId: "bob", planId: "free", startedAt: "yesterday" }), "invalid_request"],
  ["subscription without a user id", () => m().upsertSubscription({ planId: "free" } as never), "invalid_request"],
  ["a track that does not fit a counter that rejects overage", () => m().track("alice", "images", 11), "limit_reached"],
];

describe("bad input gets a MeterError with a documented code and writes nothing", () => {
  test.each(cases)("%s", async (_name, run, code) => {
    const before = await rowCounts();
    const err = await run().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MeterError);
    expect((err as MeterError).code).toBe(code);
    expect((err as MeterError).message).not.toMatch(/at .*\.ts:\d+/);
    expect(await rowCounts()).toBe(before);
  });
});

describe("createMeter checks its configuration", () => {
  test.each<[string, Record<string, unknown>]>([
    ["no plans", { plans: {} }],
    ["a negative quota", { plans: { p: { limits: { t: { quota: -1 } } } } }],
    ["an unknown period", { plans: { p: { limits: { t: { quota: 1, period: "year" } } } } }],
    ["a meter pointing at no counter", { plans: { p: { limits: { t: { quota: 1 } } } }, meters: { m: { counter: "x" } } }],
    ["a priced meter on a token counter", { plans: { p: { limits: { t: { quota: 1 } } } }, meters: { m: { counter: "t", price: "input" } } }],
    ["one counter in two units", { plans: { a: { limits: { t: { quota: 1 } } }, b: { limits: { t: { quota: 1, unit: "cents" } } } } }],
    ["a float price", { plans: { p: { limits: { t: { quota: 1 } } } }, prices: { m: { input: 0.15, output: "1" } } }],
    ["an unknown default plan", { plans: { p: { limits: { t: { quota: 1 } } } }, defaultPlan: "q" }],
    ["a schema that is not an identifier", { plans: { p: { limits: { t: { quota: 1 } } } }, schema: "bad; drop" }],
  ])("rejects %s", async (_name, opts) => {
    const { createMeter } = await import("../../src/server/index.js");
    expect(() => createMeter({ database: t.url, ...opts } as never)).toThrow(MeterError);
  });
});
