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

  it("names the pricing page each entry was read from", () => {
    for (const [model, p] of entries) {
      const host = model.startsWith("claude-") ? "platform.claude.com" : model.startsWith("gemini-") ? "ai.google.dev" : "developers.openai.com";
      expect(new URL(p.source ?? "").host, model).toBe(host);
    }
  });

  it("writes Claude's prompt cache at 1.25× (5 minutes) and 2× (1 hour) the input price, Haiku 3 at its listed $0.30 / $0.50", () => {
    for (const [model, p] of entries.filter(([m]) => m.startsWith("claude-") && m !== "claude-3-haiku-20240307")) {
      expect(value(p.cacheWrite!), model).toBeCloseTo(value(p.input) * 1.25, 10);
      expect(value(p.cacheWrite1h!), model).toBeCloseTo(value(p.input) * 2, 10);
    }
    expect(DEFAULT_PRICES["claude-3-haiku-20240307"]).toMatchObject({ cacheWrite: "0.30", cacheWrite1h: "0.50" });
  });

  it("has the long-context tiers of Gemini 2.5 Pro and Claude Sonnet 4.x above 200K prompt tokens", () => {
    for (const model of ["gemini-2.5-pro", "claude-sonnet-4-0", "claude-sonnet-4-5", "claude-sonnet-4-6"]) {
      const tier = DEFAULT_PRICES[model]?.tiers?.[0];
      expect(tier?.above, model).toBe(200_000);
      expect(value(tier!.input), model).toBe(2 * value(DEFAULT_PRICES[model]!.input));
    }
  });

  it("is frozen so that no caller can change another's prices", () => {
    expect(Object.isFrozen(DEFAULT_PRICES)).toBe(true);
  });
});
