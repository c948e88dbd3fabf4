import { MeterError } from "../core/errors.js";
import { DEFAULT_PRICES } from "../core/prices.js";
import type { PriceTable } from "../core/types.js";
import type { HoldOptions } from "./hold.js";
import type { MeteringOptions } from "./meteredChat.js";
import type { MeteringUnit } from "./types.js";

/** @internal The metering options every wrapper reads, with their defaults applied and checked once. */
export interface MeteringSettings {
  unit: MeteringUnit;
  prices: PriceTable;
  /** What `upperBound` and `countTokens` take besides the model: the unit, prices and tokenizer. */
  estimate: { unit: MeteringUnit; prices: PriceTable; tokenizer?: (text: string) => number };
  /** What `Hold.reserve` takes. */
  hold: HoldOptions;
}

/**
 * @internal Reads the options shared by `meteredChat`, `meteredResponses`, `meteredMessages`
 * and `meterMiddleware`: one place for their defaults (`"tokens"`, `DEFAULT_PRICES`,
 * `"llm.tokens"`) and for the checks of `meterKeys`.
 */
export function meteringSettings(options: MeteringOptions): MeteringSettings {
  const unit = options.unit ?? "tokens";
  const prices = options.prices ?? DEFAULT_PRICES;
  const meterKeys = checkMeterKeys(options);
  const hold: HoldOptions = { meterKey: options.meterKey ?? "llm.tokens", unit, prices };
  if (meterKeys) hold.meterKeys = meterKeys;
  if (options.ttl !== undefined) hold.ttl = options.ttl;
  if (options.idempotencyKey !== undefined) hold.idempotencyKey = options.idempotencyKey;
  if (options.metadata !== undefined) hold.metadata = options.metadata;
  if (options.onSettle !== undefined) hold.onSettle = options.onSettle;
  return { unit, prices, estimate: { unit, prices, ...(options.tokenizer ? { tokenizer: options.tokenizer } : {}) }, hold };
}

function checkMeterKeys(options: MeteringOptions): { input: string; output: string } | undefined {
  const keys = options.meterKeys;
  if (keys === undefined) return undefined;
  const ok = (k: unknown) => typeof k === "string" && k.length > 0;
  if (keys === null || typeof keys !== "object" || !ok(keys.input) || !ok(keys.output) || Object.keys(keys).some((k) => k !== "input" && k !== "output")) {
    throw new MeterError("invalid_request", 'meterKeys must be { input: "<meter key>", output: "<meter key>" }.', { field: "meterKeys" });
  }
  if (keys.input === keys.output) {
    throw new MeterError("invalid_request", "meterKeys.input and meterKeys.output must be two meters (on two counters); for one counter pass meterKey.", { field: "meterKeys" });
  }
  if (options.meterKey !== undefined) {
    throw new MeterError("invalid_request", "Pass meterKey (one counter) or meterKeys (input and output on two), not both.", { field: "meterKeys" });
  }
  return { input: keys.input, output: keys.output };
}
