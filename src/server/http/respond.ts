import { MeterError } from "../../core/errors.js";

/** Headers on every answer: nothing here may be cached or sniffed (balances are per user). */
const BASE_HEADERS: Record<string, string> = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
};

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { ...BASE_HEADERS, "content-type": "application/json; charset=utf-8", ...headers },
  });
}

/** The answer for a MeterError: its status and `{ error: { code, message, ...details } }`, never a stack. */
export function errorJson(err: MeterError, headers: Record<string, string> = {}): Response {
  // A limit that renews says when: HTTP's Retry-After, in seconds (RFC 9110 §10.2.3).
  const retry: Record<string, string> =
    err.code === "limit_reached" && typeof err.details.retryAfter === "number" ? { "retry-after": String(err.details.retryAfter) } : {};
  return json(err.status, err.toJSON(), { ...retry, ...headers });
}

/**
 * Turns an error thrown in the host app's own route (a `LimitReachedError` after a denied
 * reservation, say) into the JSON answer meterkit's clients understand — 402 `limit_reached`
 * with `counter`, `remaining` and `required`. Returns null for anything that is not a
 * `MeterError`, so the app's own error handling takes it. For Next.js route handlers, Hono,
 * and anything else built on Web `Response`s.
 */
export function meterErrorResponse(err: unknown): Response | null {
  return err instanceof MeterError ? errorJson(err) : null;
}
