import { describe, expect, it } from "vitest";
import { parseDecimal } from "../../src/core/amounts.js";
import { DEFAULT_PRICES } from "../../src/core/prices.js";

const entries = Object.entries(DEFAULT_PRICES);
const value = (s: string) => {
  const d = parseDecimal(s);
  return Number(d.units) / 10 ** d.scale;
};

describe("DEFAULT_PRICES", () => {
  it.each(entries)("%s has exact decimal prices, an effective date and an encoding", (_model, p) => {
    expect(() => parseDecimal(p.input)).not.toThrow();
    expect(() => parseDecimal(p.output)).not.toThrow();
    if (p.cachedInput !== undefined) expect(value(p.cachedInput)).toBeLessThanOrEqual(value(p.input));
    expect(value(p.output)).toBeGreaterThanOrEqual(value(p.input));
    expect(p.effective).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(["o200k_base", "cl100k_base", "estimate"]).toContain(p.encoding);
  });

  it("covers the OpenAI, Anthropic and Google families the wrappers meter", () => {
    for (const model of ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o1", "o3", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-3.5-turbo", "gpt-4"]) {
      expect(DEFAULT_PRICES[model], model).toBeDefined();
    }
    expect(entries.filter(([m]) => m.startsWith("claude-")).length).toBeGreaterThanOrEqual(5);
    expect(entries.filter(([m]) => m.startsWith("gemini-")).length).toBeGreaterThanOrEqual(3);
  });

  it("marks gpt-4o / 4.1 / o-series / gpt-5 as o200k, gpt-4 / 3.5 as cl100k, Claude and Gemini as estimated", () => {
    for (const [model, p] of entries) {
      if (/^(gpt-4o|gpt-4\.1|gpt-5|o\d)/.test(model)) expect(p.encoding, model).toBe("o200k_base");
      else if (/^gpt-(4|3\.5)/.test(model)) expect(p.encoding, model).toBe("cl100k_base");
      else expect(p.encoding, model).toBe("estimate");
    }
  });

  it("is frozen so that no caller can change another's prices", () => {
    expect(Object.isFrozen(DEFAULT_PRICES)).toBe(true);
  });
});
