import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MeterError } from "../../src/core/errors.js";
import { DEFAULT_PRICES } from "../../src/core/prices.js";
import { costOf } from "../../src/ai/index.js";

describe("costOf", () => {
  it("prices input and output exactly in cents", () => {
    // gpt-4o: $2.50 in, $10 out per million → 1000 in = 0.25¢, 500 out = 0.5¢
    expect(costOf({ model: "gpt-4o", inputTokens: 1000, outputTokens: 500 })).toEqual({ exact: "0.75", amount: 1, unit: "cents", model: "gpt-4o" });
  });

  it("prices cached input at the cached rate", () => {
    // 600 uncached × $2.50 + 400 cached × $1.25 = $0.002 = 0.2¢; 0 output
    expect(costOf({ model: "gpt-4o", inputTokens: 1000, cachedInputTokens: 400, outputTokens: 0 }).exact).toBe("0.2");
  });

  it("keeps fractions of a cent exact and rounds the whole amount up", () => {
    // gpt-4o-mini: 7 in × $0.15 + 3 out × $0.60 = $0.00000285 = 0.000285¢
    expect(costOf({ model: "gpt-4o-mini", inputTokens: 7, outputTokens: 3 })).toMatchObject({ exact: "0.000285", amount: 1 });
    expect(costOf({ model: "gpt-4o-mini", inputTokens: 0, outputTokens: 0 })).toMatchObject({ exact: "0", amount: 0 });
  });

  it("counts tokens (input + output) for a tokens counter", () => {
    expect(costOf({ model: "claude-sonnet-4-5", inputTokens: 1200, cachedInputTokens: 200, outputTokens: 34 }, { unit: "tokens" })).toEqual({
      exact: "1234",
      amount: 1234,
      unit: "tokens",
      model: "claude-sonnet-4-5",
    });
  });

  it("rejects an unknown model with not_found instead of pricing it at zero", () => {
    const call = () => costOf({ model: "gpt-9-imaginary", inputTokens: 10, outputTokens: 10 });
    expect(call).toThrow(MeterError);
    expect(call).toThrow(/No price for model "gpt-9-imaginary"/);
    try {
      call();
    } catch (err) {
      expect((err as MeterError).code).toBe("not_found");
    }
  });

  it("resolves dated snapshots and provider prefixes to the table's entry", () => {
    expect(costOf({ model: "gpt-4o-2024-08-06", inputTokens: 1000, outputTokens: 0 }).model).toBe("gpt-4o");
    expect(costOf({ model: "openai/gpt-4o-mini", inputTokens: 1000, outputTokens: 0 }).model).toBe("gpt-4o-mini");
    expect(costOf({ model: "claude-opus-4-5-20251101", inputTokens: 1000, outputTokens: 0 }).model).toBe("claude-opus-4-5");
    expect(costOf({ model: "claude-3-7-sonnet-20250219", inputTokens: 1000, outputTokens: 0 }).model).toBe("claude-3-7-sonnet-latest");
  });

  it("uses the app's table, which can add and override models", () => {
    const prices = { ...DEFAULT_PRICES, "gpt-4o": { input: "1", output: "1" }, "my-model": { input: "0.5", output: "3" } };
    expect(costOf({ model: "gpt-4o", inputTokens: 1_000_000, outputTokens: 0 }, { prices }).exact).toBe("100");
    expect(costOf({ model: "my-model", inputTokens: 2_000_000, outputTokens: 1_000_000 }, { prices }).exact).toBe("400");
  });

  it("matches exact rational arithmetic for any token counts (property)", () => {
    fc.assert(
      fc.property(fc.nat(10_000_000), fc.nat(10_000_000), fc.nat(10_000_000), (input, cachedRaw, output) => {
        const cached = Math.min(cachedRaw, input);
        const cost = costOf({ model: "gpt-4.1-mini", inputTokens: input, cachedInputTokens: cached, outputTokens: output });
        // $0.40 / $0.10 / $1.60 per million → micro-cents per token: 40 / 10 / 160 (×10^-6 ¢)
        const microCents = BigInt(input - cached) * 40n + BigInt(cached) * 10n + BigInt(output) * 160n;
        const whole = microCents / 1_000_000n;
        const frac = (microCents % 1_000_000n).toString().padStart(6, "0").replace(/0+$/, "");
        expect(cost.exact).toBe(frac ? `${whole}.${frac}` : String(whole));
        expect(cost.amount).toBe(Number((microCents + 999_999n) / 1_000_000n));
      }),
      { numRuns: 300 },
    );
  });
});
