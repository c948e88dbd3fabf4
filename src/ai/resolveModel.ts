import { MeterError } from "../core/errors.js";
import type { ModelPrice, PriceTable } from "../core/types.js";

/** A model id matched to its price-table entry. */
export interface ResolvedModel {
  /** The model id as the caller or the provider named it. */
  model: string;
  /** The price-table key it matched (`gpt-4o` for `gpt-4o-2024-08-06`). */
  key: string;
  price: ModelPrice;
}

const DATE_SUFFIX = /-(\d{4}-\d{2}-\d{2}|\d{8})$/;

/**
 * Finds a model's entry: the exact id first, then without a provider prefix (`openai/gpt-4o`),
 * then without a snapshot date (`gpt-4o-2024-08-06`, `claude-opus-4-5-20251101`), then the
 * provider's `-latest` / `-0` alias of that. An unknown model is a `not_found` error, never a
 * zero price.
 */
export function resolveModel(prices: PriceTable, model: unknown): ResolvedModel {
  if (typeof model !== "string" || model.length === 0) {
    throw new MeterError("invalid_request", "A model is required to price tokens.", { field: "model" });
  }
  for (const key of candidates(model)) {
    const price = Object.prototype.hasOwnProperty.call(prices, key) ? prices[key] : undefined;
    if (price) return { model, key, price };
  }
  throw new MeterError("not_found", `No price for model "${model}". Add it to the price table (prices option).`, { model });
}

/** The price-table key for `model`, or `undefined` when the table has none. */
export function findModel(prices: PriceTable, model: string): ResolvedModel | undefined {
  try {
    return resolveModel(prices, model);
  } catch {
    return undefined;
  }
}

function candidates(model: string): string[] {
  const out = [model];
  const bare = model.includes("/") ? model.slice(model.lastIndexOf("/") + 1) : model;
  if (bare !== model) out.push(bare);
  const undated = bare.replace(DATE_SUFFIX, "");
  if (undated !== bare) out.push(undated, `${undated}-latest`, `${undated}-0`);
  return out;
}
