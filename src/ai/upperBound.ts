import { assertAmount } from "../core/amounts.js";
import { DEFAULT_PRICES } from "../core/prices.js";
import { ceilFine, fineCostOfUsage } from "../core/pricing.js";
import { costOf } from "./costOf.js";
import { estimateChatTokens } from "./estimateChatTokens.js";
import { resolveModel } from "./resolveModel.js";
import type { ChatMessageLike, EstimateOptions, MeteringUnit } from "./types.js";

/** Arguments of {@link upperBound}. */
export interface UpperBoundInput extends EstimateOptions {
  messages: readonly ChatMessageLike[];
  /** The most output tokens the call may produce (`max_completion_tokens` / `max_tokens`). Required. */
  maxTokens: number;
  /** Number of choices requested (`n`); multiplies the output bound. Default 1. */
  n?: number;
  /** The unit of the counter charged: `"tokens"` or `"cents"`. Default `"tokens"`. */
  unit?: MeteringUnit;
  /** Same as `unit` (the name the issue uses). */
  counter?: MeteringUnit;
  /**
   * The request may write its prompt to the provider's cache (Anthropic `cache_control`):
   * `"5m"` or `"1h"` prices the input at that write price where it is above the input price.
   * Default: none (input at the input price).
   */
  cacheWrite?: "5m" | "1h";
}

/** The most a call can cost, and how it was reached. */
export interface UpperBound {
  /** Whole base units of `unit`, rounded up. */
  amount: number;
  unit: MeteringUnit;
  /** The price-table key of the model (for a `tokens` unit without a price entry, the model id). */
  model: string;
  /** Estimated input tokens (never below the real count for OpenAI text; see `estimateChatTokens`). */
  inputTokens: number;
  /** `maxTokens × n`. */
  outputTokens: number;
  /**
   * The input side of `amount` (`inputTokens`, or their price rounded up) and the output side,
   * for holding them on separate counters (`meterKeys`). Their sum is `amount`, or one more
   * when both sides round up.
   */
  sides: { input: number; output: number };
}

/**
 * The most a chat call can cost: its estimated input plus `maxTokens` of output, in tokens or
 * priced as if no input came from the cache (at the long-context tier of the estimate, and at
 * the cache-write price when `cacheWrite` says the prompt may be written). Reserve this
 * before the call.
 */
export function upperBound(input: UpperBoundInput): UpperBound {
  const unit = input.unit ?? input.counter ?? "tokens";
  const prices = input.prices ?? DEFAULT_PRICES;
  const maxTokens = assertAmount(input.maxTokens, "maxTokens", { allowZero: true });
  const n = assertAmount(input.n ?? 1, "n");
  const inputTokens = estimateChatTokens(input.messages, input);
  const outputTokens = maxTokens * n;
  if (unit === "tokens") {
    // A tokens counter needs no price, but a model the table knows is named by its key.
    let model = input.model;
    try {
      model = resolveModel(prices, input.model).key;
    } catch {
      // keep the id as given
    }
    return { amount: inputTokens + outputTokens, unit, model, inputTokens, outputTokens, sides: { input: inputTokens, output: outputTokens } };
  }
  // A prompt written to the cache may cost more than plain input: bound by the dearer of the two.
  const plain = costOf({ model: input.model, inputTokens, outputTokens }, { unit, prices });
  const writes = input.cacheWrite === "1h" ? { cacheWrite1hTokens: inputTokens } : input.cacheWrite === "5m" ? { cacheWriteTokens: inputTokens } : undefined;
  const cost = writes ? costOf({ model: input.model, inputTokens, outputTokens, ...writes }, { unit, prices }) : plain;
  const amount = Math.max(plain.amount, cost.amount);
  // Each side on its own: the input at the dearer of plain and cache-write prices, the output at
  // the rates of the tier the input falls in.
  const price = resolveModel(prices, input.model).price;
  const fineIn = fineCostOfUsage(price, { inputTokens, outputTokens: 0, ...writes });
  const fineInPlain = fineCostOfUsage(price, { inputTokens, outputTokens: 0 });
  const fineOut = fineCostOfUsage(price, { inputTokens, outputTokens }) - fineInPlain;
  const sides = { input: ceilFine(fineIn > fineInPlain ? fineIn : fineInPlain), output: ceilFine(fineOut) };
  return { amount, unit, model: plain.model, inputTokens, outputTokens, sides };
}
