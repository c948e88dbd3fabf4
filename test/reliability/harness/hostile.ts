import fc from "fast-check";

/** Numbers and look-alikes that break naive amount handling. */
export const HOSTILE_AMOUNTS: unknown[] = [
  -1, 0, -0, 1, 2 ** 53, 2 ** 53 - 1, -(2 ** 53), 2 ** 63, 1e308, -1e308, Number.MAX_VALUE, Number.MIN_VALUE, 0.5, 1.0000001,
  NaN, Infinity, -Infinity, "1", "0x10", "1e3", "", " 1", "NaN", null, true, false, [], [1], {}, { valueOf: 1 },
];

/** Ids: unicode, lookalikes, SQL and LIKE metacharacters, prototype keys, huge, control characters, lone surrogates. */
export const HOSTILE_IDS: unknown[] = [
  "", " ", "a".repeat(255), "a".repeat(256), "x".repeat(100_000), "\u0000", "a\u0000b", "\n", "\u007f", "\ud800", "a\udfffb",
  "🙂", "🙂".repeat(127), "🙂".repeat(128), "ü", "u\u0308", "İ", "\u202e", "'; DROP TABLE meterkit.entries; --", "%", "_", "\\", "%_%",
  "__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "valueOf", "../../etc/passwd", "null", "undefined",
  "tokens.refund", ".refund", "tokens.refund.refund", null, 1, 0, -1, NaN, true, [], ["a"], {}, { toString: "x" },
];

export const amountArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 500 }) },
  { weight: 3, arbitrary: fc.constantFrom(...HOSTILE_AMOUNTS) },
  fc.integer({ min: -1_000, max: 5_000 }),
  fc.double(),
  fc.bigInt().map((b) => Number(b)),
);

export const idArb = (valid: string[]): fc.Arbitrary<unknown> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...valid) },
    { weight: 3, arbitrary: fc.constantFrom(...HOSTILE_IDS) },
    { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 300 }) },
    { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 80 }) },
  );

/** JSON nested `depth` levels deep. */
export function deepJson(depth: number, kind: "array" | "object"): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = kind === "array" ? [v] : { a: v };
  return v;
}

export const jsonishArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.constantFrom(deepJson(200, "object"), deepJson(2_000, "array"), deepJson(5_000, "object"), { big: "y".repeat(20_000) }, { nul: "\u0000" }, { lone: "\ud800" }),
  fc.anything({ maxDepth: 3 }),
);

export const optionsArb = (validIds: string[]): fc.Arbitrary<unknown> =>
  fc.oneof(
    fc.constantFrom(undefined, undefined, undefined, null, 1, "x", [], {}),
    fc.record(
      {
        ttl: amountArb,
        idempotencyKey: idArb(validIds),
        model: idArb(["gpt-4o-mini", "gpt-4o", "unknown-model"]),
        metadata: jsonishArb,
        actual: amountArb,
        usage: fc.oneof(fc.record({ inputTokens: amountArb, outputTokens: amountArb, cachedInputTokens: amountArb }, { requiredKeys: [] }), jsonishArb),
        reservationId: idArb(validIds),
        expiresAt: fc.oneof(fc.date({ noInvalidDate: false }), fc.string(), fc.constantFrom("2030-01-01T00:00:00Z", "0001-01-01", "+275760-09-13T00:00:00Z", "1969-12-31T23:59:59Z", "2026-02-30")),
        source: idArb(["promo"]),
        reason: fc.oneof(fc.string({ maxLength: 1200 }), amountArb),
        customLimits: jsonishArb,
      },
      { requiredKeys: [] },
    ),
  );

/** A stack trace or a source path in an answer: never allowed. */
export function leaksInternals(text: string): boolean {
  return /\n\s+at |node_modules|\/src\/|\.ts:\d|\.js:\d|pg_catalog|plpgsql|SQLSTATE|syntax error/i.test(text);
}
