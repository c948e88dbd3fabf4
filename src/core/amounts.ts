import { MeterError } from "./errors.js";

/**
 * Amounts are integers in a counter's base unit (a token, a cent, …), end to end.
 * These checks are the single gate every public function passes its numbers through.
 */
export const MAX_AMOUNT = Number.MAX_SAFE_INTEGER;

export interface AmountRule {
  /** Accept 0 (e.g. a commit of nothing). Default false. */
  allowZero?: boolean;
  /** Accept negative values (adjustments). Default false. */
  allowNegative?: boolean;
}

/** Returns `value` if it is a safe integer obeying `rule`, else throws `invalid_request` naming `name`. */
export function assertAmount(value: unknown, name: string, rule: AmountRule = {}): number {
  if (typeof value !== "number") {
    throw new MeterError("invalid_request", `${name} must be a number, got ${describe(value)}.`, { field: name });
  }
  if (!Number.isFinite(value)) {
    throw new MeterError("invalid_request", `${name} must be finite, got ${String(value)}.`, { field: name });
  }
  if (!Number.isInteger(value)) {
    throw new MeterError("invalid_request", `${name} must be a whole number of base units, got ${value}.`, { field: name });
  }
  if (Math.abs(value) > MAX_AMOUNT) {
    throw new MeterError("invalid_request", `${name} must be at most 2^53 - 1 in size, got ${value}.`, { field: name });
  }
  if (Object.is(value, -0)) return assertAmount(0, name, rule);
  if (value < 0 && !rule.allowNegative) {
    throw new MeterError("invalid_request", `${name} must not be negative, got ${value}.`, { field: name });
  }
  if (value === 0 && !rule.allowZero) {
    throw new MeterError("invalid_request", `${name} must be greater than zero.`, { field: name });
  }
  return value;
}

/**
 * Refuses a field of `value` (a plain object, or undefined / null) outside `known`: a typo
 * (`ttll`, `cachedTokens`) is `invalid_request` naming its path, never silently ignored. `path`
 * is the object's own path ("" at the top of an options argument). Used by the local meter
 * and the remote client alike.
 */
export function assertKnownFields(value: unknown, path: string, known: readonly string[]): void {
  if (value === undefined || value === null || typeof value !== "object" || Array.isArray(value)) return;
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      const field = path ? `${path}.${key}` : key;
      throw new MeterError("invalid_request", `Unknown field "${field}" (known: ${known.join(", ") || "none"}).`, { field });
    }
  }
}

/** Ids (users, reservations, counters, keys): non-empty strings of at most 255 characters, no control characters. */
export function assertId(value: unknown, name: string): string {
  if (typeof value !== "string") {
    throw new MeterError("invalid_request", `${name} must be a string, got ${describe(value)}.`, { field: name });
  }
  if (value.length === 0 || value.length > 255) {
    throw new MeterError("invalid_request", `${name} must be 1 to 255 characters long.`, { field: name });
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value) || !value.isWellFormed()) {
    throw new MeterError("invalid_request", `${name} must not contain control characters or lone surrogates.`, { field: name });
  }
  return value;
}

export function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value)}`;
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  return typeof value;
}

/** An exact decimal: `units / 10^scale`. Parsed from strings like "0.15" or "2.5", never from floats. */
export interface Decimal {
  units: bigint;
  scale: number;
}

const DECIMAL_RE = /^(0|[1-9]\d{0,17})(?:\.(\d{1,10}))?$/;

/** Parses a non-negative decimal string exactly ("0.075" → 75 / 10^3). */
export function parseDecimal(text: unknown, name = "price"): Decimal {
  if (typeof text !== "string" || !DECIMAL_RE.test(text)) {
    throw new MeterError("invalid_request", `${name} must be a non-negative decimal string like "0.15", got ${describe(text)}.`, { field: name });
  }
  const [whole, frac = ""] = text.split(".");
  return { units: BigInt((whole ?? "0") + frac), scale: frac.length };
}
