import { createHash } from "node:crypto";
import { assertAmount, assertId, describe } from "../core/amounts.js";
import { MeterError } from "../core/errors.js";
import type { TokenUsage } from "../core/types.js";

/** Longest a hold may live: a day. */
export const MAX_TTL_MS = 86_400_000;
const MAX_METADATA_BYTES = 16_384;
/** Postgres parses jsonb recursively: deeper documents hit its stack limit (a 500), so refuse them first. */
const MAX_METADATA_DEPTH = 32;

/** Nesting depth of a JSON-like value, without recursion (a hostile value may be very deep). */
function depthOf(value: unknown): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (d > max) max = d;
    if (max > MAX_METADATA_DEPTH) return max;
    for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return max;
}

/** An options argument: undefined, or a plain object. */
export function optionsObject<T extends object>(value: T | undefined, name: string): Partial<T> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new MeterError("invalid_request", `${name} must be an object, got ${describe(value)}.`, { field: name });
  }
  return value;
}

/**
 * An options argument whose fields are all known: undefined, or a plain object with no field
 * outside `known`. A typo (`ttll`, `cachedTokens`) is `invalid_request` naming its path, never
 * silently ignored. `name` is the path of the object itself ("" at the top level).
 */
export function strictObject<T extends object>(value: T | undefined, name: string, known: readonly string[]): Partial<T> {
  const o = optionsObject(value, name || "options");
  for (const key of Object.keys(o)) {
    if (!known.includes(key)) {
      const path = name ? `${name}.${key}` : key;
      throw new MeterError("invalid_request", `Unknown field "${path}" (known: ${known.join(", ") || "none"}).`, { field: path });
    }
  }
  return o;
}

export function optionalId(value: unknown, name: string): string | null {
  return value === undefined || value === null ? null : assertId(value, name);
}

export function optionalString(value: unknown, name: string, max = 255): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== "string" || value.length === 0 || value.length > max) {
    throw new MeterError("invalid_request", `${name} must be a string of 1 to ${max} characters.`, { field: name });
  }
  // PostgreSQL text cannot hold NUL or malformed UTF-16 (lone surrogates): refuse them here.
  if (value.includes("\u0000") || !value.isWellFormed()) {
    throw new MeterError("invalid_request", `${name} must not contain NUL characters or lone surrogates.`, { field: name });
  }
  return value;
}

/** Free-form metadata: a plain JSON object of at most 16 kB. */
export function metadataJson(value: unknown, name = "metadata"): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new MeterError("invalid_request", `${name} must be a plain object.`, { field: name });
  }
  if (depthOf(value) > MAX_METADATA_DEPTH) {
    throw new MeterError("invalid_request", `${name} must be nested at most ${MAX_METADATA_DEPTH} levels deep.`, { field: name });
  }
  let json: string;
  // Postgres jsonb rejects the \uD800-style escapes JSON.stringify writes for lone surrogates
  // (in keys or strings): refuse them here rather than fail inside the ledger.
  let malformed = false;
  try {
    json = JSON.stringify(value, function (this: unknown, key: string, v: unknown) {
      if (!key.isWellFormed() || (typeof v === "string" && !v.isWellFormed())) malformed = true;
      return v;
    });
  } catch {
    throw new MeterError("invalid_request", `${name} must be JSON-serialisable.`, { field: name });
  }
  if (malformed) throw new MeterError("invalid_request", `${name} must not contain lone surrogates (malformed UTF-16).`, { field: name });
  if (Buffer.byteLength(json) > MAX_METADATA_BYTES) {
    throw new MeterError("invalid_request", `${name} must be at most ${MAX_METADATA_BYTES} bytes of JSON.`, { field: name });
  }
  // Postgres jsonb rejects \u0000 in strings.
  if (json.includes("\\u0000")) throw new MeterError("invalid_request", `${name} must not contain NUL characters.`, { field: name });
  return json;
}

export function ttlMs(value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  const ttl = assertAmount(value, "ttl");
  if (ttl > MAX_TTL_MS) throw new MeterError("invalid_request", `ttl must be at most ${MAX_TTL_MS} ms (24 h).`, { field: "ttl" });
  return ttl;
}

/**
 * ISO 8601 as meterkit accepts it: a date, or a date and time with an optional zone (none =
 * UTC). `Date.parse` alone rolls impossible dates over ("2026-02-30" → March 2): the fields are
 * checked against the calendar first.
 */
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?$/;

export function optionalDate(value: unknown, name: string): Date | null {
  if (value === undefined || value === null) return null;
  let d: Date | null = null;
  if (value instanceof Date) d = value;
  else if (typeof value === "string") {
    const m = ISO_DATE.exec(value);
    if (m) {
      const [year, month, day, hour = 0, minute = 0, second = 0] = m.slice(1, 7).map((x) => (x === undefined ? undefined : Number(x))) as number[];
      const daysInMonth = month! >= 1 && month! <= 12 ? new Date(Date.UTC(year!, month!, 0)).getUTCDate() : 0;
      const valid = day! >= 1 && day! <= daysInMonth && hour <= 23 && minute <= 59 && second <= 59;
      // Without a zone, a date-time is read as UTC, like a bare date (Date.parse would use local time).
      if (valid) d = new Date(m[4] !== undefined && m[7] === undefined ? value + "Z" : value);
    }
  }
  if (!d || Number.isNaN(d.getTime()) || d.getUTCFullYear() < 1970 || d.getUTCFullYear() > 9999) {
    throw new MeterError("invalid_request", `${name} must be a real calendar date, as a Date or an ISO 8601 string (e.g. "2026-03-01T00:00:00Z").`, { field: name });
  }
  return d;
}

export function tokenUsage(value: unknown): Required<TokenUsage> {
  const u = strictObject(value as TokenUsage, "usage", ["inputTokens", "cachedInputTokens", "outputTokens"]);
  const inputTokens = assertAmount(u.inputTokens, "usage.inputTokens", { allowZero: true });
  const outputTokens = assertAmount(u.outputTokens, "usage.outputTokens", { allowZero: true });
  const cachedInputTokens = assertAmount(u.cachedInputTokens ?? 0, "usage.cachedInputTokens", { allowZero: true });
  if (cachedInputTokens > inputTokens) {
    throw new MeterError("invalid_request", "usage.cachedInputTokens cannot exceed usage.inputTokens.", { field: "usage.cachedInputTokens" });
  }
  return { inputTokens, outputTokens, cachedInputTokens };
}

/** What an idempotent call is compared by: the same key with other arguments is a conflict. */
export function fingerprint(...parts: unknown[]): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex");
}
