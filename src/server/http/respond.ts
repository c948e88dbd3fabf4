import { MeterError } from "../../core/errors.js";

/**
 * An answer of the meter handler before it is anything on the wire: the Web handler makes it a
 * `Response` (`toResponse`), the Node adapters write it straight to Node's `ServerResponse`
 * (`writeReply`), so one route's answer is the same bytes either way. Header names are lower case.
 */
export interface Reply {
  status: number;
  headers: Record<string, string>;
  /** The text of a JSON answer, a live stream's events, or nothing. */
  body: string | ReadableStream<Uint8Array> | null;
}

/** Headers on every answer: nothing here may be cached or sniffed (balances are per user). */
const BASE_HEADERS: Record<string, string> = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
};

/** The JSON text of each `Response` that `toResponse` built from a text, for the Node adapter (see `bufferedText`). */
const TEXTS = new WeakMap<Response, string>();

/** A JSON answer. */
export function json(status: number, body: unknown, headers: Record<string, string> = {}): Reply {
  return { status, headers: { ...BASE_HEADERS, "content-type": "application/json; charset=utf-8", ...headers }, body: JSON.stringify(body) };
}

/** The Web `Response` of a reply. */
export function toResponse(reply: Reply): Response {
  const response = new Response(reply.body, { status: reply.status, headers: reply.headers });
  if (typeof reply.body === "string") TEXTS.set(response, reply.body);
  return response;
}

/**
 * The body text of a `Response` built by `toResponse` from a text, so `sendWebResponse` writes
 * it at once instead of reading it back through the `Response`'s stream; undefined for any other.
 */
export function bufferedText(response: Response): string | undefined {
  return TEXTS.get(response);
}

/** The answer for a MeterError: its status and `{ error: { code, message, ...details } }`, never a stack. */
export function errorJson(err: MeterError, headers: Record<string, string> = {}): Reply {
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
  return err instanceof MeterError ? toResponse(errorJson(err)) : null;
}
