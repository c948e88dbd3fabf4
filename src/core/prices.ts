import type { ModelPrice, PriceTable } from "./types.js";

/*
 * The built-in price table: US dollars per million tokens, standard (not batch, not priority)
 * tier, short-context rates. Checked against the providers' published pricing pages
 * (developers.openai.com/api/docs/pricing, platform.claude.com/docs/en/about-claude/pricing,
 * ai.google.dev/gemini-api/docs/pricing) on 2026-11-27. Prices change: pass your own table
 * (spread this one and override entries) rather than editing it.
 *
 * Not expressible here, so not applied: Gemini 2.5 Pro bills prompts over 200K tokens at
 * higher rates; Claude Sonnet 4 / 4.5 bill prompts over 200K tokens (1M-context beta) at
 * higher rates; Anthropic cache writes cost more than base input. Override the entry if your
 * traffic hits those.
 */

const O200K = "o200k_base" as const;
const CL100K = "cl100k_base" as const;
const ESTIMATE = "estimate" as const;

function price(input: string, cachedInput: string | undefined, output: string, effective: string, encoding: ModelPrice["encoding"]): ModelPrice {
  return cachedInput === undefined ? { input, output, effective, encoding } : { input, cachedInput, output, effective, encoding };
}

/** Model id → price. Frozen; build your own table with `{ ...DEFAULT_PRICES, "my-model": {...} }`. */
export const DEFAULT_PRICES: PriceTable = Object.freeze({
  // OpenAI — GPT-5 family (o200k).
  "gpt-5.5": price("5.00", "0.50", "30.00", "2026-04-23", O200K),
  "gpt-5.4": price("2.50", "0.25", "15.00", "2026-03-05", O200K),
  "gpt-5.4-mini": price("0.75", "0.075", "4.50", "2026-03-17", O200K),
  "gpt-5.4-nano": price("0.20", "0.02", "1.25", "2026-03-17", O200K),
  "gpt-5.2": price("1.75", "0.175", "14.00", "2025-12-11", O200K),
  "gpt-5.1": price("1.25", "0.125", "10.00", "2025-11-13", O200K),
  "gpt-5": price("1.25", "0.125", "10.00", "2025-08-07", O200K),
  "gpt-5-mini": price("0.25", "0.025", "2.00", "2025-08-07", O200K),
  "gpt-5-nano": price("0.05", "0.005", "0.40", "2025-08-07", O200K),
  // OpenAI — GPT-4.1 and GPT-4o families (o200k).
  "gpt-4.1": price("2.00", "0.50", "8.00", "2025-04-14", O200K),
  "gpt-4.1-mini": price("0.40", "0.10", "1.60", "2025-04-14", O200K),
  "gpt-4.1-nano": price("0.10", "0.025", "0.40", "2025-04-14", O200K),
  "gpt-4o": price("2.50", "1.25", "10.00", "2024-10-01", O200K),
  "gpt-4o-mini": price("0.15", "0.075", "0.60", "2024-07-18", O200K),
  // OpenAI — o-series reasoning models (o200k; reasoning tokens bill as output).
  o1: price("15.00", "7.50", "60.00", "2024-12-17", O200K),
  "o1-mini": price("1.10", "0.55", "4.40", "2024-12-17", O200K),
  o3: price("2.00", "0.50", "8.00", "2025-06-10", O200K),
  "o3-mini": price("1.10", "0.55", "4.40", "2025-01-31", O200K),
  "o4-mini": price("1.10", "0.275", "4.40", "2025-04-16", O200K),
  // OpenAI — older chat models (cl100k, no prompt caching).
  "gpt-4-turbo": price("10.00", undefined, "30.00", "2024-04-09", CL100K),
  "gpt-4": price("30.00", undefined, "60.00", "2023-03-14", CL100K),
  "gpt-4-32k": price("60.00", undefined, "120.00", "2023-03-14", CL100K),
  "gpt-3.5-turbo": price("0.50", undefined, "1.50", "2024-01-25", CL100K),
  // Anthropic Claude (tokenizer not public: estimated). cachedInput = cache hits.
  "claude-opus-5": price("5.00", "0.50", "25.00", "2026-11-01", ESTIMATE),
  "claude-sonnet-5": price("2.00", "0.20", "10.00", "2026-09-01", ESTIMATE),
  "claude-opus-4-8": price("5.00", "0.50", "25.00", "2026-06-01", ESTIMATE),
  "claude-opus-4-7": price("5.00", "0.50", "25.00", "2026-03-01", ESTIMATE),
  "claude-opus-4-6": price("5.00", "0.50", "25.00", "2026-02-05", ESTIMATE),
  "claude-opus-4-5": price("5.00", "0.50", "25.00", "2025-11-24", ESTIMATE),
  "claude-opus-4-1": price("15.00", "1.50", "75.00", "2025-08-05", ESTIMATE),
  "claude-opus-4-0": price("15.00", "1.50", "75.00", "2025-05-22", ESTIMATE),
  "claude-sonnet-4-6": price("3.00", "0.30", "15.00", "2026-02-17", ESTIMATE),
  "claude-sonnet-4-5": price("3.00", "0.30", "15.00", "2025-09-29", ESTIMATE),
  "claude-sonnet-4-0": price("3.00", "0.30", "15.00", "2025-05-22", ESTIMATE),
  "claude-3-7-sonnet-latest": price("3.00", "0.30", "15.00", "2025-02-24", ESTIMATE),
  "claude-haiku-4-5": price("1.00", "0.10", "5.00", "2025-10-15", ESTIMATE),
  "claude-3-5-haiku-latest": price("0.80", "0.08", "4.00", "2024-11-04", ESTIMATE),
  "claude-3-haiku-20240307": price("0.25", "0.03", "1.25", "2024-03-13", ESTIMATE),
  // Google Gemini (tokenizer not public: estimated). Prompts ≤ 200K tokens.
  "gemini-2.5-pro": price("1.25", "0.125", "10.00", "2025-06-17", ESTIMATE),
  "gemini-2.5-flash": price("0.30", "0.03", "2.50", "2025-06-17", ESTIMATE),
  "gemini-2.5-flash-lite": price("0.10", "0.01", "0.40", "2025-07-22", ESTIMATE),
  "gemini-2.0-flash": price("0.10", "0.025", "0.40", "2025-02-05", ESTIMATE),
  "gemini-2.0-flash-lite": price("0.075", undefined, "0.30", "2025-02-25", ESTIMATE),
} satisfies PriceTable);
