import { describe } from "../../core/amounts.js";
import { MeterError } from "../../core/errors.js";

/** Reads the body, refusing (413) as soon as it passes `limit` bytes, before buffering the rest. */
export async function readBody(request: Request, limit: number): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) throw tooLarge(limit);
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
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

function tooLarge(limit: number): MeterError {
  return new MeterError("payload_too_large", `The body is larger than ${limit} bytes.`, { limit });
}

/**
 * A JSON object body. Empty → `{}` (commit and release need none). Anything else must say
 * `application/json`: a cross-site form cannot send that without a CORS preflight, which keeps
 * cookie-authenticated POSTs safe from forgery.
 */
export async function readJsonObject(request: Request, limit: number): Promise<Record<string, unknown>> {
  const bytes = await readBody(request, limit);
  if (bytes.byteLength === 0) return {};
  const type = (request.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json" && !/^application\/[a-z0-9.+-]+\+json$/.test(type)) {
    throw new MeterError("invalid_request", "The body must be JSON with `Content-Type: application/json`.", { field: "content-type" });
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new MeterError("invalid_request", "The body is not valid JSON.");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new MeterError("invalid_request", `The body must be a JSON object, got ${describe(value)}.`);
  }
  return value as Record<string, unknown>;
}

type FieldType = "string" | "number" | "object";

/** `name` required, `name?` optional. */
export type Shape = Record<string, FieldType>;

/**
 * Checks a body against a shape: no unknown fields (a typo must not be silently ignored),
 * required fields present, JSON types right. Value rules (ranges, ids) are the ledger's.
 */
export function checkShape(body: Record<string, unknown>, shape: Shape): void {
  const allowed = new Map<string, { type: FieldType; optional: boolean }>();
  for (const [k, type] of Object.entries(shape)) {
    const optional = k.endsWith("?");
    allowed.set(optional ? k.slice(0, -1) : k, { type, optional });
  }
  for (const key of Object.keys(body)) {
    if (!allowed.has(key)) {
      const known = [...allowed.keys()].join(", ") || "none";
      throw new MeterError("invalid_request", `Unknown field "${key}" (known fields: ${known}).`, { field: key });
    }
  }
  for (const [key, { type, optional }] of allowed) {
    const v = body[key];
    if (v === undefined || v === null) {
      if (optional) continue;
      throw new MeterError("invalid_request", `${key} is required.`, { field: key });
    }
    const ok = type === "object" ? typeof v === "object" && !Array.isArray(v) : typeof v === type;
    if (!ok) throw new MeterError("invalid_request", `${key} must be ${type === "object" ? "an object" : `a ${type}`}, got ${describe(v)}.`, { field: key });
  }
}
