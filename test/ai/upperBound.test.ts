import { describe, expect, it } from "vitest";
import { costOf, estimateChatTokens, upperBound } from "../../src/ai/index.js";
import type { ChatMessageLike } from "../../src/ai/index.js";

const messages: ChatMessageLike[] = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Summarise the plot of Hamlet." },
];

describe("upperBound", () => {
  it("is the estimated input plus maxTokens in tokens", () => {
    const input = estimateChatTokens(messages, { model: "gpt-4o" });
    expect(upperBound({ messages, model: "gpt-4o", maxTokens: 500 })).toEqual({ amount: input + 500, unit: "tokens", model: "gpt-4o", inputTokens: input, outputTokens: 500, sides: { input, output: 500 } });
  });

  it("splits a cents bound into an input side and an output side that cover it", () => {
    const b = upperBound({ messages, model: "gpt-4o", maxTokens: 100_000, unit: "cents" });
    // 100 000 output tokens at $10 per million: exactly 100¢; the input side rounds up to 1¢.
    expect(b.sides).toEqual({ input: 1, output: 100 });
    expect(b.sides.input + b.sides.output).toBeGreaterThanOrEqual(b.amount);
    expect(b.sides.input + b.sides.output).toBeLessThanOrEqual(b.amount + 1);
  });

  it("multiplies the output bound by the number of choices", () => {
    const input = estimateChatTokens(messages, { model: "gpt-4o" });
    expect(upperBound({ messages, model: "gpt-4o", maxTokens: 100, n: 3 }).amount).toBe(input + 300);
  });

  it("prices the bound in cents, rounded up, with no input assumed cached", () => {
    const input = estimateChatTokens(messages, { model: "gpt-5" });
    const bound = upperBound({ messages, model: "gpt-5", maxTokens: 4000, unit: "cents" });
    expect(bound.amount).toBe(costOf({ model: "gpt-5", inputTokens: input, outputTokens: 4000 }).amount);
    // 4000 output tokens × $10 / M = 4¢, plus a fraction for the input → 5¢
    expect(bound.amount).toBe(5);
  });

  it("accepts counter as the name of the unit", () => {
    expect(upperBound({ messages, model: "gpt-4o-mini", maxTokens: 1_000_000, counter: "cents" })).toMatchObject({ unit: "cents", amount: 61 });
  });

  it("needs a price only for cents: an unknown model is fine in tokens and an error in cents", () => {
    expect(upperBound({ messages, model: "llama-local", maxTokens: 10 }).model).toBe("llama-local");
    expect(() => upperBound({ messages, model: "llama-local", maxTokens: 10, unit: "cents" })).toThrow(/No price for model "llama-local"/);
  });

  it("names the model by its price-table key", () => {
    expect(upperBound({ messages, model: "gpt-4o-2024-11-20", maxTokens: 10 }).model).toBe("gpt-4o");
  });

  it("rejects a negative or fractional maxTokens", () => {
    expect(() => upperBound({ messages, model: "gpt-4o", maxTokens: -1 })).toThrow(/maxTokens/);
    expect(() => upperBound({ messages, model: "gpt-4o", maxTokens: 1.5 })).toThrow(/maxTokens/);
  });
});
