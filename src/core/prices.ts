import { parseDecimal } from "./amounts.js";
import type { ModelPrice, PriceTable, PriceTier } from "./types.js";

/*
 * The built-in price table: US dollars per million tokens, standard (not batch, not priority)
 * tier. Checked against the providers' published pricing pages (each entry's `source`) on
 * 2026-11-27; `effective` is the date each price took effect. Prices change: load a current
 * table with `parsePriceTable` (a JSON file the host refreshes) and spread it over this one,
 * rather than waiting for a release.
 *
 * Applied: cache reads (`cachedInput`); Anthropic cache writes at 1.25× (5-minute) and 2×
 * (1-hour) the input price; the long-context tiers of Gemini 2.5 Pro and Claude Sonnet 4.x
 * (prompts over 200K tokens pay higher rates on every token of the call).
 * Not applied: batch and priority tiers, regional (data residency) multipliers, OpenAI's
 * long-context rates, Gemini's context-cache storage per hour.
 */

const O200K = "o200k_base" as const;
const CL100K = "cl100k_base" as const;
const ESTIMATE = "estimate" as const;

const OPENAI = "https://developers.openai.com/api/docs/pricing";
const ANTHROPIC = "https://platform.claude.com/docs/en/about-claude/pricing";
const GOOGLE = "https://ai.google.dev/gemini-api/docs/pricing";

function price(input: string, cachedInput: string | undefined, output: string, effective: string, encoding: ModelPrice["encoding"], source: string): ModelPrice {
  return cachedInput === undefined ? { input, output, effective, source, encoding } : { input, cachedInput, output, effective, source, encoding };
}

/** A Claude entry: cache writes at 1.25× (5 minutes) and 2× (1 hour) the input price. */
function claude(input: string, cachedInput: string, output: string, effective: string, tiers?: readonly PriceTier[]): ModelPrice {
  const p: ModelPrice = { input, cachedInput, cacheWrite: times(input, "1.25"), cacheWrite1h: times(input, "2"), output, effective, source: ANTHROPIC, encoding: ESTIMATE };
  return tiers ? { ...p, tiers } : p;
}

/** Claude Sonnet 4.x with the 1M-token context: prompts over 200K tokens pay $6 / $22.50 (cache writes and reads scale alike). */
const SONNET_LONG_CONTEXT: readonly PriceTier[] = Object.freeze([
  Object.freeze({ above: 200_000, input: "6.00", cachedInput: "0.60", cacheWrite: "7.50", cacheWrite1h: "12.00", output: "22.50" }),
]);

/** Gemini 2.5 Pro: prompts over 200K tokens pay $2.50 / $15 (cache reads $0.25). */
const GEMINI_PRO_LONG_CONTEXT: readonly PriceTier[] = Object.freeze([Object.freeze({ above: 200_000, input: "2.50", cachedInput: "0.25", output: "15.00" })]);

/** `a × b` of two decimal strings, exactly, written with two decimals or more like the rest of the table. */
function times(a: string, b: string): string {
  const x = parseDecimal(a);
  const y = parseDecimal(b);
  const scale = Math.max(x.scale + y.scale, 2);
  const digits = (x.units * y.units * 10n ** BigInt(scale - x.scale - y.scale)).toString().padStart(scale + 1, "0");
  const cut = digits.length - scale;
  const frac = digits.slice(cut).replace(/0+$/, "").padEnd(2, "0");
  return `${digits.slice(0, cut)}.${frac}`;
}

/** Model id → price. Frozen; build your own table with `{ ...DEFAULT_PRICES, "my-model": {...} }`. */
export const DEFAULT_PRICES: PriceTable = Object.freeze({
  // OpenAI — GPT-5 family (o200k).
  "gpt-5.5": price("5.00", "0.50", "30.00", "2026-04-23", O200K, OPENAI),
  "gpt-5.4": price("2.50", "0.25", "15.00", "2026-03-05", O200K, OPENAI),
  "gpt-5.4-mini": price("0.75", "0.075", "4.50", "2026-03-17", O200K, OPENAI),
  "gpt-5.4-nano": price("0.20", "0.02", "1.25", "2026-03-17", O200K, OPENAI),
  "gpt-5.2": price("1.75", "0.175", "14.00", "2025-12-11", O200K, OPENAI),
  "gpt-5.1": price("1.25", "0.125", "10.00", "2025-11-13", O200K, OPENAI),
  "gpt-5": price("1.25", "0.125", "10.00", "2025-08-07", O200K, OPENAI),
  "gpt-5-mini": price("0.25", "0.025", "2.00", "2025-08-07", O200K, OPENAI),
  "gpt-5-nano": price("0.05", "0.005", "0.40", "2025-08-07", O200K, OPENAI),
  // OpenAI — GPT-4.1 and GPT-4o families (o200k).
  "gpt-4.1": price("2.00", "0.50", "8.00", "2025-04-14", O200K, OPENAI),
  "gpt-4.1-mini": price("0.40", "0.10", "1.60", "2025-04-14", O200K, OPENAI),
  "gpt-4.1-nano": price("0.10", "0.025", "0.40", "2025-04-14", O200K, OPENAI),
  "gpt-4o": price("2.50", "1.25", "10.00", "2024-10-01", O200K, OPENAI),
  "gpt-4o-mini": price("0.15", "0.075", "0.60", "2024-07-18", O200K, OPENAI),
  // OpenAI — o-series reasoning models (o200k; reasoning tokens bill as output).
  o1: price("15.00", "7.50", "60.00", "2024-12-17", O200K, OPENAI),
  "o1-mini": price("1.10", "0.55", "4.40", "2024-12-17", O200K, OPENAI),
  o3: price("2.00", "0.50", "8.00", "2025-06-10", O200K, OPENAI),
  "o3-mini": price("1.10", "0.55", "4.40", "2025-01-31", O200K, OPENAI),
  "o4-mini": price("1.10", "0.275", "4.40", "2025-04-16", O200K, OPENAI),
  // OpenAI — older chat models (cl100k, no prompt caching).
  "gpt-4-turbo": price("10.00", undefined, "30.00", "2024-04-09", CL100K, OPENAI),
  "gpt-4": price("30.00", undefined, "60.00", "2023-03-14", CL100K, OPENAI),
  "gpt-4-32k": price("60.00", undefined, "120.00", "2023-03-14", CL100K, OPENAI),
  "gpt-3.5-turbo": price("0.50", undefined, "1.50", "2024-01-25", CL100K, OPENAI),
  // Anthropic Claude (tokenizer not public: estimated). cachedInput = cache hits.
  "claude-opus-5": claude("5.00", "0.50", "25.00", "2026-11-01"),
  "claude-sonnet-5": claude("2.00", "0.20", "10.00", "2026-09-01"),
  "claude-opus-4-8": claude("5.00", "0.50", "25.00", "2026-06-01"),
  "claude-opus-4-7": claude("5.00", "0.50", "25.00", "2026-03-01"),
  "claude-opus-4-6": claude("5.00", "0.50", "25.00", "2026-02-05"),
  "claude-opus-4-5": claude("5.00", "0.50", "25.00", "2025-11-24"),
  "claude-opus-4-1": claude("15.00", "1.50", "75.00", "2025-08-05"),
  "claude-opus-4-0": claude("15.00", "1.50", "75.00", "2025-05-22"),
  "claude-sonnet-4-6": claude("3.00", "0.30", "15.00", "2026-02-17", SONNET_LONG_CONTEXT),
  "claude-sonnet-4-5": claude("3.00", "0.30", "15.00", "2025-09-29", SONNET_LONG_CONTEXT),
  "claude-sonnet-4-0": claude("3.00", "0.30", "15.00", "2025-05-22", SONNET_LONG_CONTEXT),
  "claude-3-7-sonnet-latest": claude("3.00", "0.30", "15.00", "2025-02-24"),
  "claude-haiku-4-5": claude("1.00", "0.10", "5.00", "2025-10-15"),
  "claude-3-5-haiku-latest": claude("0.80", "0.08", "4.00", "2024-11-04"),
  // Claude Haiku 3 is listed with a 5-minute write at $0.30 (not 1.25×) and a 1-hour write at $0.50.
  "claude-3-haiku-20240307": { ...claude("0.25", "0.03", "1.25", "2024-03-13"), cacheWrite: "0.30", cacheWrite1h: "0.50" },
  // Google Gemini (tokenizer not public: estimated).
  "gemini-2.5-pro": { ...price("1.25", "0.125", "10.00", "2025-06-17", ESTIMATE, GOOGLE), tiers: GEMINI_PRO_LONG_CONTEXT },
  "gemini-2.5-flash": price("0.30", "0.03", "2.50", "2025-06-17", ESTIMATE, GOOGLE),
  "gemini-2.5-flash-lite": price("0.10", "0.01", "0.40", "2025-07-22", ESTIMATE, GOOGLE),
  "gemini-2.0-flash": price("0.10", "0.025", "0.40", "2025-02-05", ESTIMATE, GOOGLE),
  "gemini-2.0-flash-lite": price("0.075", undefined, "0.30", "2025-02-25", ESTIMATE, GOOGLE),
} satisfies PriceTable);
