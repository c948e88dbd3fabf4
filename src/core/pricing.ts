import { assertAmount, parseDecimal } from "./amounts.js";
import { MeterError } from "./errors.js";
import type { ModelPrice, PriceTable, TokenUsage } from "./types.js";

/**
 * Money is computed in "fine" units: 10^-16 of a cent. Every price with up to ten decimals per
 * million tokens is an exact integer number of fine units per token, so costs are exact bigints
 * and only the final rounding to whole cents needs a carry (kept per counter by the ledger,
 * `round_fine` in the migrations).
 */
export const FINE_PER_UNIT = 10n ** 16n;

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

/** Exact cost of one call's token usage, in fine units (10^-16 cent). */
export function fineCostOfUsage(price: ModelPrice, usage: TokenUsage): bigint {
  const input = assertAmount(usage.inputTokens, "usage.inputTokens", { allowZero: true });
  const cached = assertAmount(usage.cachedInputTokens ?? 0, "usage.cachedInputTokens", { allowZero: true });
  const output = assertAmount(usage.outputTokens, "usage.outputTokens", { allowZero: true });
  if (cached > input) {
    throw new MeterError("invalid_request", "usage.cachedInputTokens cannot exceed usage.inputTokens.", { field: "usage.cachedInputTokens" });
  }
  return (
    fineCostOfTokens(input - cached, price.input) +
    fineCostOfTokens(cached, price.cachedInput ?? price.input) +
    fineCostOfTokens(output, price.output)
  );
}

/** Whole cents for a fine amount, rounded up (for holds: never under-reserve). */
export function ceilFine(fine: bigint): number {
  return Number((fine + FINE_PER_UNIT - 1n) / FINE_PER_UNIT);
}
