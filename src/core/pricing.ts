import { assertAmount, parseDecimal } from "./amounts.js";
import { MeterError } from "./errors.js";
import type { ModelPrice, PriceTable, PriceTier, TokenUsage } from "./types.js";

/**
 * Money is computed in "fine" units: 10^-16 of a cent. Every price with up to ten decimals per
 * million tokens is an exact integer number of fine units per token, so costs are exact bigints
 * and only the final rounding to whole cents needs a carry (kept per counter by the ledger,
 * `round_fine` in the migrations).
 */
export const FINE_PER_UNIT = 10n ** 16n;

/**
 * Token counts as a provider reports them, prompt-cache writes included. Every count is part
 * of `inputTokens` or `outputTokens`, never on top of them.
 */
export interface ProviderUsage extends TokenUsage {
  /** The part of `inputTokens` written to the prompt cache with the default (5-minute) lifetime. Default 0. */
  cacheWriteTokens?: number;
  /** The part of `inputTokens` written to the prompt cache for one hour. Default 0. */
  cacheWrite1hTokens?: number;
  /** The part of `outputTokens` spent on reasoning (thinking); for the record, priced as output. Default 0. */
  reasoningTokens?: number;
}

/** Exact cost of `tokens` tokens at `price` (major currency units per million tokens), in fine units. */
export function fineCostOfTokens(tokens: number, price: string): bigint {
  const { units, scale } = parseDecimal(price);
  // cents = tokens * units / 10^scale / 10^6 * 100  →  fine = tokens * units * 10^(12 - scale)
  return BigInt(tokens) * units * 10n ** BigInt(12 - scale);
}

/** Looks a model up in a price table; an unknown model is an error, never a zero price. */
export function priceOf(prices: PriceTable, model: unknown): ModelPrice {
  if (typeof model !== "string" || model.length === 0) {
    throw new MeterError("invalid_request", "A model is required to price tokens.", { field: "model" });
  }
  const entry = Object.prototype.hasOwnProperty.call(prices, model) ? prices[model] : undefined;
  if (!entry) {
    throw new MeterError("not_found", `No price for model "${model}". Add it to the price table.`, { model });
  }
  return entry;
}

/** The rates that apply to a prompt of `promptTokens` input tokens: the highest tier it exceeds, else the base prices. */
export function priceTierFor(price: ModelPrice, promptTokens: number): PriceTier {
  let tier: PriceTier | undefined;
  for (const t of price.tiers ?? []) if (promptTokens > t.above && (!tier || t.above > tier.above)) tier = t;
  return tier ?? { above: 0, ...pickRates(price) };
}

/**
 * Exact cost of one call's token usage, in fine units (10^-16 cent): uncached input, cache
 * reads, 5-minute and 1-hour cache writes and output, each at its price, all at the rates of
 * the long-context tier the prompt falls in.
 */
export function fineCostOfUsage(price: ModelPrice, usage: ProviderUsage): bigint {
  const input = assertAmount(usage.inputTokens, "usage.inputTokens", { allowZero: true });
  const cached = assertAmount(usage.cachedInputTokens ?? 0, "usage.cachedInputTokens", { allowZero: true });
  const write = assertAmount(usage.cacheWriteTokens ?? 0, "usage.cacheWriteTokens", { allowZero: true });
  const write1h = assertAmount(usage.cacheWrite1hTokens ?? 0, "usage.cacheWrite1hTokens", { allowZero: true });
  const output = assertAmount(usage.outputTokens, "usage.outputTokens", { allowZero: true });
  if (cached + write + write1h > input) {
    throw new MeterError("invalid_request", "usage.cachedInputTokens plus the cache writes cannot exceed usage.inputTokens.", {
      field: "usage.cachedInputTokens",
    });
  }
  const t = priceTierFor(price, input);
  return (
    fineCostOfTokens(input - cached - write - write1h, t.input) +
    fineCostOfTokens(cached, t.cachedInput ?? t.input) +
    fineCostOfTokens(write, t.cacheWrite ?? t.input) +
    fineCostOfTokens(write1h, t.cacheWrite1h ?? t.cacheWrite ?? t.input) +
    fineCostOfTokens(output, t.output)
  );
}

/** Whole cents for a fine amount, rounded up (for holds: never under-reserve). */
export function ceilFine(fine: bigint): number {
  return Number((fine + FINE_PER_UNIT - 1n) / FINE_PER_UNIT);
}

function pickRates(p: ModelPrice): Omit<PriceTier, "above"> {
  const rates: Omit<PriceTier, "above"> = { input: p.input, output: p.output };
  if (p.cachedInput !== undefined) rates.cachedInput = p.cachedInput;
  if (p.cacheWrite !== undefined) rates.cacheWrite = p.cacheWrite;
  if (p.cacheWrite1h !== undefined) rates.cacheWrite1h = p.cacheWrite1h;
  return rates;
}
