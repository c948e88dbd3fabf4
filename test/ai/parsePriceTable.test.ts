import { describe, expect, it } from "vitest";
import { parsePriceTable } from "../../src/core/parsePriceTable.js";
import { DEFAULT_PRICES } from "../../src/core/prices.js";
import { costOf } from "../../src/ai/index.js";

const FILE = JSON.stringify({
  "claude-sonnet-4-5": {
    input: "3.00",
    cachedInput: "0.30",
    cacheWrite: "3.75",
    cacheWrite1h: "6.00",
    output: "15.00",
    tiers: [{ above: 200000, input: "6.00", cachedInput: "0.60", cacheWrite: "7.50", cacheWrite1h: "12.00", output: "22.50" }],
    effective: "2025-09-29",
    source: "https://platform.claude.com/docs/en/about-claude/pricing",
    encoding: "estimate",
  },
  "my-model": { input: "1", output: "2" },
});

describe("parsePriceTable", () => {
  it("reads a JSON table with cache writes, tiers, dates and sources, and prices with it", () => {
    const prices = parsePriceTable(FILE);
    expect(prices["claude-sonnet-4-5"]).toEqual(DEFAULT_PRICES["claude-sonnet-4-5"]);
    expect(costOf({ model: "my-model", inputTokens: 1_000_000, outputTokens: 1_000_000 }, { prices }).exact).toBe("300");
    expect(Object.isFrozen(prices)).toBe(true);
    expect(Object.isFrozen(prices["claude-sonnet-4-5"]?.tiers?.[0])).toBe(true);
  });

  it("accepts the parsed value as well as the text, and round-trips the built-in table", () => {
    expect(parsePriceTable(JSON.parse(JSON.stringify(DEFAULT_PRICES)))).toEqual(DEFAULT_PRICES);
  });

  it.each([
    ["not JSON", "{", /not valid JSON/],
    ["an array", "[]", /prices must be an object/],
    ["an unknown field", { m: { input: "1", output: "1", cacheRead: "0.1" } }, /prices\["m"\]\.cacheRead is not a known field/],
    ["a number for a price", { m: { input: 1, output: "1" } }, /prices\["m"\]\.input must be a non-negative decimal string/],
    ["a missing output price", { m: { input: "1" } }, /prices\["m"\]\.output is required/],
    ["a negative price", { m: { input: "-1", output: "1" } }, /decimal string/],
    ["an unknown tier field", { m: { input: "1", output: "1", tiers: [{ above: 10, input: "2", output: "2", below: 5 }] } }, /tiers\[0\]\.below is not a known field/],
    ["a tier without a threshold", { m: { input: "1", output: "1", tiers: [{ input: "2", output: "2" }] } }, /tiers\[0\]\.above/],
    ["a repeated threshold", { m: { input: "1", output: "1", tiers: [{ above: 5, input: "2", output: "2" }, { above: 5, input: "3", output: "3" }] } }, /repeats/],
    ["a malformed date", { m: { input: "1", output: "1", effective: "yesterday" } }, /effective must be an ISO date/],
    ["an unknown encoding", { m: { input: "1", output: "1", encoding: "p50k" } }, /encoding must be one of/],
  ])("rejects %s with invalid_request naming the field", (_name, input, message) => {
    let error: unknown;
    try {
      parsePriceTable(input);
    } catch (err) {
      error = err;
    }
    expect(error).toMatchObject({ code: "invalid_request" });
    expect((error as Error).message).toMatch(message);
  });
});
