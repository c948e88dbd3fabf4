import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_PRICES } from "../../src/core/prices.js";
import { fineCostOfTokens, fineCostOfUsage, priceTierFor } from "../../src/core/pricing.js";
import type { ModelPrice } from "../../src/core/types.js";
import { costOf, upperBound } from "../../src/ai/index.js";
import { ledgerUsage } from "../../src/ai/ledgerUsage.js";

const sonnet = DEFAULT_PRICES["claude-sonnet-4-5"]!;

describe("cache writes and long-context tiers", () => {
  it("prices 5-minute cache writes at 1.25× and 1-hour writes at 2× the input price of Claude", () => {
    // 100 000 written for 5 minutes × $3.75 = 37.5¢; for an hour × $6 = 60¢
    expect(costOf({ model: "claude-sonnet-4-5", inputTokens: 100_000, cacheWriteTokens: 100_000, outputTokens: 0 }).exact).toBe("37.5");
    expect(costOf({ model: "claude-sonnet-4-5", inputTokens: 100_000, cacheWrite1hTokens: 100_000, outputTokens: 0 }).exact).toBe("60");
    expect(DEFAULT_PRICES["claude-opus-4-1"]).toMatchObject({ input: "15.00", cacheWrite: "18.75", cacheWrite1h: "30.00" });
    expect(costOf({ model: "claude-haiku-4-5", inputTokens: 1_000, cacheWriteTokens: 1_000, outputTokens: 0 }).exact).toBe("0.125");
  });

  it("applies a long-context tier to every token once the prompt exceeds its threshold, and not at it", () => {
    // Exactly 200 000: base rates. One more: $6 in / $22.50 out for everything.
    expect(costOf({ model: "claude-sonnet-4-5", inputTokens: 200_000, outputTokens: 1_000 }).exact).toBe("61.5");
    expect(costOf({ model: "claude-sonnet-4-5", inputTokens: 200_001, outputTokens: 1_000 }).exact).toBe("122.2506");
    // Gemini 2.5 Pro: $1.25 / $10 → $2.50 / $15 (cache reads $0.25)
    expect(costOf({ model: "gemini-2.5-pro", inputTokens: 300_000, cachedInputTokens: 100_000, outputTokens: 10_000 }).exact).toBe("67.5");
    expect(priceTierFor(DEFAULT_PRICES["gemini-2.5-pro"]!, 100).input).toBe("1.25");
  });

  it("picks the highest tier the prompt exceeds, whatever their order", () => {
    const price: ModelPrice = { input: "1", output: "2", tiers: [{ above: 500, input: "3", output: "4" }, { above: 100, input: "2", output: "3" }] };
    expect(priceTierFor(price, 100).input).toBe("1");
    expect(priceTierFor(price, 101).input).toBe("2");
    expect(priceTierFor(price, 501).input).toBe("3");
  });

  it("bounds a request that may write its prompt to the cache at the write price", () => {
    const messages = [{ role: "user" as const, content: "x".repeat(100_000) }];
    const plain = upperBound({ messages, model: "claude-sonnet-4-5", maxTokens: 0, unit: "cents" });
    const fiveMinutes = upperBound({ messages, model: "claude-sonnet-4-5", maxTokens: 0, unit: "cents", cacheWrite: "5m" });
    const oneHour = upperBound({ messages, model: "claude-sonnet-4-5", maxTokens: 0, unit: "cents", cacheWrite: "1h" });
    expect([plain.amount, fiveMinutes.amount, oneHour.amount]).toEqual([
      Math.ceil((plain.inputTokens * 3) / 10_000),
      Math.ceil((plain.inputTokens * 3.75) / 10_000),
      Math.ceil((plain.inputTokens * 6) / 10_000),
    ]);
  });

  it("refuses cache reads and writes that add up to more than the prompt", () => {
    expect(() => fineCostOfUsage(sonnet, { inputTokens: 10, cachedInputTokens: 6, cacheWriteTokens: 5, outputTokens: 0 })).toThrow(/cannot exceed/);
  });
});

describe("ledgerUsage: exact cents through the ledger's three token prices", () => {
  /** What the ledger's op_resolve charges for a usage on a hold of `price`, in fine units. */
  const ledgerFine = (price: ModelPrice, u: { inputTokens: number; cachedInputTokens: number; outputTokens: number }) =>
    BigInt(u.inputTokens - u.cachedInputTokens) * fineCostOfTokens(1, price.input) +
    BigInt(u.cachedInputTokens) * fineCostOfTokens(1, price.cachedInput ?? price.input) +
    BigInt(u.outputTokens) * fineCostOfTokens(1, price.output);

  const usage = fc
    .record({ plain: fc.nat(400_000), read: fc.nat(100_000), w5: fc.nat(50_000), w1: fc.nat(50_000), output: fc.nat(64_000), reasoning: fc.nat(64_000) })
    .map((u) => ({
      inputTokens: u.plain + u.read + u.w5 + u.w1,
      cachedInputTokens: u.read,
      cacheWriteTokens: u.w5,
      cacheWrite1hTokens: u.w1,
      outputTokens: u.output,
      reasoningTokens: Math.min(u.reasoning, u.output),
    }));

  it("passes the real counts when the base prices already give the exact cost", () => {
    const u = { inputTokens: 1_000, cachedInputTokens: 400, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 50, reasoningTokens: 20 };
    expect(ledgerUsage(DEFAULT_PRICES["gpt-5"]!, u).usage).toEqual({ inputTokens: 1_000, cachedInputTokens: 400, outputTokens: 50 });
  });

  it("never charges less than the exact cost, and more by less than one cache-read token (property)", () => {
    const models = ["claude-sonnet-4-5", "claude-opus-4-1", "claude-3-haiku-20240307", "gemini-2.5-pro", "gpt-4o", "gpt-5-nano"];
    fc.assert(
      fc.property(fc.constantFrom(...models), usage, (model, u) => {
        const price = DEFAULT_PRICES[model]!;
        const c = ledgerUsage(price, u);
        expect(c.exact).toBe(fineCostOfUsage(price, u));
        expect(ledgerFine(price, c.usage)).toBe(c.charged);
        expect(c.charged >= c.exact).toBe(true);
        expect(c.charged - c.exact < fineCostOfTokens(1, price.cachedInput ?? price.input)).toBe(true);
        expect(c.usage.cachedInputTokens).toBeLessThanOrEqual(c.usage.inputTokens);
      }),
      { numRuns: 500 },
    );
  });

  it("is exact for Claude whenever the 5-minute writes are even (1.25× of an even count is whole cache reads)", () => {
    fc.assert(
      fc.property(usage, (u) => {
        const even = { ...u, inputTokens: u.inputTokens - (u.cacheWriteTokens % 2), cacheWriteTokens: u.cacheWriteTokens - (u.cacheWriteTokens % 2) };
        const c = ledgerUsage(sonnet, even);
        expect(c.charged).toBe(c.exact);
      }),
      { numRuns: 300 },
    );
  });

  it("handles a table whose cache writes cost less than input", () => {
    const cheap: ModelPrice = { input: "2", cachedInput: "0.5", cacheWrite: "1", output: "8" };
    const u = { inputTokens: 1_000, cachedInputTokens: 0, cacheWriteTokens: 1_000, cacheWrite1hTokens: 0, outputTokens: 10, reasoningTokens: 0 };
    const c = ledgerUsage(cheap, u);
    expect(c.charged).toBe(c.exact);
    expect(ledgerFine(cheap, c.usage)).toBe(c.exact);
  });
});
