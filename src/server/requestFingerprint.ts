import { createHash } from "node:crypto";

/** JSON with object keys sorted and undefined fields left out: `{a, b}` and `{b, a}` are one body. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/**
 * What an idempotency key is bound to: SHA-256 (hex) of `operation` (a route, a settings
 * change) and the canonical JSON of `body`, so the same request sent again matches whatever
 * the order of its fields, and any other request does not.
 */
export function requestFingerprint(operation: string, body: unknown): string {
  return createHash("sha256").update(operation).update("\n").update(canonical(body)).digest("hex");
}
