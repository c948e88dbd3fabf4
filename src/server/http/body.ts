import { describe } from "../../core/amounts.js";
import { MeterError } from "../../core/errors.js";
import type { Incoming } from "./incoming.js";

/**
 * Reads the body, refusing (413) a declared length over `limit` before reading anything, and
 * any body as soon as it passes `limit` bytes, before buffering the rest.
 */
export async function readBody(incoming: Incoming, limit: number): Promise<Uint8Array> {
  const declared = incoming.header("content-length");
  if (declared !== null && Number(declared) > limit) throw tooLarge(limit);
  return incoming.bytes(limit);
}

/** A body stream's bytes (none without one), refusing (413) as soon as it passes `limit`. */
export async function readStream(body: ReadableStream<Uint8Array> | null, limit: number): Promise<Uint8Array> {
  if (!body) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel().catch(() => {});
        throw tooLarge(limit);
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof MeterError) throw err;
    throw new MeterError("invalid_request", "The request body could not be read.");
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** 413 `payload_too_large`. */
export function tooLarge(limit: number): MeterError {
  return new MeterError("payload_too_large", `The body is larger than ${limit} bytes.`, { limit });
}

/** One decoder for every body: a fatal one refuses bytes that are not UTF-8; each decode starts afresh. */
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A JSON object body. Empty → `{}` (commit and release need none). Anything else must say
 * `application/json`: a cross-site form cannot send that without a CORS preflight, which keeps
 * cookie-authenticated POSTs safe from forgery.
 */
export async function readJsonObject(incoming: Incoming, limit: number): Promise<Record<string, unknown>> {
  const bytes = await readBody(incoming, limit);
  if (bytes.byteLength === 0) return {};
  const type = (incoming.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json" && !/^application\/[a-z0-9.+-]+\+json$/.test(type)) {
    throw new MeterError("invalid_request", "The body must be JSON with `Content-Type: application/json`.", { field: "content-type" });
  }
  let value: unknown;
  try {
    value = JSON.parse(UTF8.decode(bytes));
  } catch {
    throw new MeterError("invalid_request", "The body is not valid JSON.");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new MeterError("invalid_request", `The body must be a JSON object, got ${describe(value)}.`);
  }
  return value as Record<string, unknown>;
}

/**
 * A field's JSON type. `amounts` is an object of key → safe integer (meter key → amount, as in
 * `meter.reserve(userId, amounts)` and a multi-counter commit's `actual`), checked key by key.
 */
export type FieldType = "string" | "number" | "object" | "amounts";

/** One type, or the types a field may take (`actual`: a number or amounts). */
export type FieldSpec = FieldType | readonly FieldType[];

/** `name` required, `name?` optional. */
export type Shape = Record<string, FieldSpec>;

/**
 * Checks a body against a shape, or against the one of several alternative shapes (forms of
 * one request) that it comes closest to: no unknown fields (a typo must not be silently
 * ignored), required fields present, JSON types right, errors naming the field's path. Value
 * rules (ranges, ids) are the ledger's.
 */
export function checkShape(body: Record<string, unknown>, shape: Shape | readonly Shape[]): void {
  if (!isAlternatives(shape)) return checkOne(body, shape);
  // The form with the fewest unknown and missing fields explains the error best; a body that fits one passes.
  let best = shape[0]!;
  let misfit = Infinity;
  for (const s of shape) {
    const fields = fieldsOf(s);
    const unknown = Object.keys(body).filter((k) => !fields.has(k)).length;
    const missing = [...fields].filter(([k, f]) => !f.optional && (body[k] === undefined || body[k] === null)).length;
    if (unknown + missing < misfit) [best, misfit] = [s, unknown + missing];
  }
  checkOne(body, best);
}

function isAlternatives(shape: Shape | readonly Shape[]): shape is readonly Shape[] {
  return Array.isArray(shape);
}

type Fields = Map<string, { types: readonly FieldType[]; optional: boolean }>;

/** Each shape's fields, read once: the routes' shapes are constants, checked on every request. */
const FIELDS = new WeakMap<Shape, Fields>();

function fieldsOf(shape: Shape): Fields {
  let fields = FIELDS.get(shape);
  if (fields) return fields;
  fields = new Map();
  for (const [k, spec] of Object.entries(shape)) {
    const optional = k.endsWith("?");
    fields.set(optional ? k.slice(0, -1) : k, { types: typeof spec === "string" ? [spec as FieldType] : (spec as readonly FieldType[]), optional });
  }
  FIELDS.set(shape, fields);
  return fields;
}

function checkOne(body: Record<string, unknown>, shape: Shape): void {
  const allowed = fieldsOf(shape);
  for (const key of Object.keys(body)) {
    if (!allowed.has(key)) {
      const known = [...allowed.keys()].join(", ") || "none";
      throw new MeterError("invalid_request", `Unknown field "${key}" (known fields: ${known}).`, { field: key });
    }
  }
  for (const [key, { types, optional }] of allowed) {
    const v = body[key];
    if (v === undefined || v === null) {
      if (optional) continue;
      throw new MeterError("invalid_request", `${key} is required.`, { field: key });
    }
    const type = types.find((t) => fits(v, t));
    if (!type) throw new MeterError("invalid_request", `${key} must be ${types.map(TYPE_NAMES.get, TYPE_NAMES).join(" or ")}, got ${describe(v)}.`, { field: key });
    if (type === "amounts") checkAmounts(v as Record<string, unknown>, key);
  }
}

const TYPE_NAMES = new Map<FieldType, string>([
  ["string", "a string"],
  ["number", "a number"],
  ["object", "an object"],
  ["amounts", "an object of key → amount"],
]);

function fits(v: unknown, type: FieldType): boolean {
  if (type === "object" || type === "amounts") return typeof v === "object" && v !== null && !Array.isArray(v);
  return typeof v === type;
}

/** Each entry a safe integer ≥ 0, at least one entry; the error names the path (`amounts.llm.input`). */
function checkAmounts(v: Record<string, unknown>, key: string): void {
  const entries = Object.entries(v);
  if (entries.length === 0) throw new MeterError("invalid_request", `${key} must name at least one key.`, { field: key });
  for (const [k, n] of entries) {
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
      throw new MeterError("invalid_request", `${key}.${k} must be a whole number ≥ 0 (a safe integer), got ${describe(n)}.`, { field: `${key}.${k}` });
    }
  }
}
