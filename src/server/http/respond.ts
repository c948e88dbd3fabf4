import { MeterError } from "../../core/errors.js";

/** Headers on every answer: nothing here may be cached or sniffed (balances are per user). */
const BASE_HEADERS: Record<string, string> = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
};

/** The JSON text of each answer `json` built, for the Node adapter (see `bufferedText`). */
const TEXTS = new WeakMap<Response, string>();

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  const text = JSON.stringify(body);
  const response = new Response(text, {
    status,
    headers: { ...BASE_HEADERS, "content-type": "application/json; charset=utf-8", ...headers },
  });
  TEXTS.set(response, text);
  return response;
}

/**
 * The body text of an answer built by `json`, so the Node adapter writes it at once instead of
 * reading it back through the `Response`'s stream; undefined for any other `Response`.
 */
export function bufferedText(response: Response): string | undefined {
  return TEXTS.get(response);
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
