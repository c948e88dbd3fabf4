import { DEFAULT_PRICES } from "../core/prices.js";
import type { PriceTable } from "../core/types.js";
import { findModel } from "./resolveModel.js";
import { countText, encodingForModel } from "./tokenizer.js";

/** Options of {@link countTokens}. */
export interface CountTokensOptions {
  /** The model id; picks the tokenizer. Required. */
  model: string;
  /** Your own counter for models whose tokenizer is not built in. Default: see {@link estimateChatTokens}. */
  tokenizer?: (text: string) => number;
  /** Consulted for the model's `encoding`. Default: `DEFAULT_PRICES`. */
  prices?: PriceTable;
}

/**
 * Tokens of a plain text (no chat overhead) under the model's tokenizer; UTF-8 bytes for
 * models whose tokenizer is not public. Used to count output a provider did not report.
 */
export function countTokens(text: string, options: CountTokensOptions): number {
  if (options.tokenizer) return options.tokenizer(text);
  const prices = options.prices ?? DEFAULT_PRICES;
  return countText(text, encodingForModel(options.model, findModel(prices, options.model)?.price));
}
