import { assertAmount } from "../core/amounts.js";
import { MeterError } from "../core/errors.js";
import { DEFAULT_PRICES } from "../core/prices.js";
import { FINE_PER_UNIT, fineCostOfUsage } from "../core/pricing.js";
import type { PriceTable } from "../core/types.js";
import { resolveModel } from "./resolveModel.js";
import type { MeteringUnit } from "./types.js";

/** Arguments of {@link costOf}. */
export interface CostOfInput {
  /** The model id; looked up in `prices` (dated snapshots and `provider/` prefixes resolve). */
  model: string;
  /** All input tokens, cached ones included. */
  inputTokens: number;
  /** The part of `inputTokens` read from the prompt cache. Default 0. */
  cachedInputTokens?: number;
  /** The part of `inputTokens` written to the prompt cache for 5 minutes (Anthropic). Default 0. */
  cacheWriteTokens?: number;
  /** The part of `inputTokens` written to the prompt cache for 1 hour (Anthropic). Default 0. */
  cacheWrite1hTokens?: number;
  /** All output tokens, reasoning (thinking) tokens included. */
  outputTokens: number;
}

/** Options of {@link costOf}. */
export interface CostOfOptions {
  /** `"cents"` prices the tokens; `"tokens"` counts them (input + output). Default `"cents"`. */
  unit?: MeteringUnit;
  /** Default: `DEFAULT_PRICES`. */
  prices?: PriceTable;
}

/** A cost, exact and as whole base units. */
export interface Cost {
  /** The exact amount in `unit` as a decimal string (`"0.0375"` cents). */
  exact: string;
  /** The exact amount rounded up to a whole base unit (what a hold must cover). */
  amount: number;
  unit: MeteringUnit;
  /** The price-table key the model resolved to. */
  model: string;
}

/**
 * The exact cost of one call's tokens, in cents (US cents when the table is in dollars) or in
 * tokens: cache reads and writes at their prices, and every token at the long-context tier
 * the prompt falls in (`inputTokens` above a tier's `above`). An unknown model is a
 * `not_found` error, never a zero price.
 */
export function costOf(input: CostOfInput, options: CostOfOptions = {}): Cost {
  const unit = options.unit ?? "cents";
  const resolved = resolveModel(options.prices ?? DEFAULT_PRICES, input.model);
  if (unit === "tokens") {
    const tokens = assertAmount(input.inputTokens, "inputTokens", { allowZero: true }) + assertAmount(input.outputTokens, "outputTokens", { allowZero: true });
    return { exact: String(tokens), amount: tokens, unit, model: resolved.key };
  }
  if (unit !== "cents") throw new MeterError("invalid_request", `unit must be "tokens" or "cents", got ${String(unit)}.`, { field: "unit" });
  const fine = fineCostOfUsage(resolved.price, {
    inputTokens: input.inputTokens,
    cachedInputTokens: input.cachedInputTokens ?? 0,
    cacheWriteTokens: input.cacheWriteTokens ?? 0,
    cacheWrite1hTokens: input.cacheWrite1hTokens ?? 0,
    outputTokens: input.outputTokens,
  });
  return { exact: fineToDecimal(fine), amount: Number((fine + FINE_PER_UNIT - 1n) / FINE_PER_UNIT), unit, model: resolved.key };
}

/** Fine units (10^-16 cent) as an exact decimal string of cents, trailing zeros trimmed. */
export function fineToDecimal(fine: bigint): string {
  const whole = fine / FINE_PER_UNIT;
  const frac = (fine % FINE_PER_UNIT).toString().padStart(16, "0").replace(/0+$/, "");
  return frac ? `${whole}.${frac}` : String(whole);
}
