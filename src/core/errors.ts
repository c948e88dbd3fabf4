/**
 * The one registry of error codes. Every error meterkit raises or answers over HTTP carries
 * one of these codes; the HTTP status is derived from it, never chosen ad hoc.
 */
export const ERROR_CODES = {
  /** The request or an argument is malformed: wrong type, out of range, missing. */
  invalid_request: 400,
  /** No identity: no user from `identify`, no or an unknown secret key, a bad browser token. */
  unauthenticated: 401,
  /** An identity that may not do this (a browser trying to write usage). */
  forbidden: 403,
  /** Unknown user, plan, meter, counter, reservation, pack or route. */
  not_found: 404,
  /** The user has not enough left; carries `counter`, `remaining`, `required`. */
  limit_reached: 402,
  /** The method is not allowed on this route. */
  method_not_allowed: 405,
  /** The state does not allow it: the hold already expired or was released, an idempotency key reused with another body. */
  conflict: 409,
  /** The body is larger than the handler accepts. */
  payload_too_large: 413,
  /** Too many at once for this user (open usage streams); close one or retry later. */
  too_many_requests: 429,
  /** The database (or Stripe) cannot be reached or timed out; safe to retry. */
  unavailable: 503,
  /** A bug: never caused by input. */
  internal: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** A JSON value, as an error detail may carry (e.g. the first result of a hold in a `conflict`). */
export type ErrorDetailValue = string | number | boolean | null | ErrorDetailValue[] | { [key: string]: ErrorDetailValue };

/** Extra, machine-readable fields an error carries on the wire next to `code` and `message`. */
export type ErrorDetails = Record<string, ErrorDetailValue>;

/** The error type of every meterkit entry point. `code` is one of {@link ERROR_CODES}. */
export class MeterError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "MeterError";
    this.code = code;
    this.status = ERROR_CODES[code];
    this.details = details;
  }

  /** The wire shape: `{ error: { code, message, ...details } }`. */
  toJSON(): ErrorBody {
    return { error: { ...this.details, code: this.code, message: this.message } };
  }
}

/** A reservation or charge that the user's balance cannot cover (HTTP 402). */
export class LimitReachedError extends MeterError {
  readonly counter: string;
  readonly remaining: number;
  readonly required: number;
  /**
   * Seconds until a retry can succeed, when waiting helps (the counter renews then; see
   * `ReserveResult.retryAfter`). HTTP answers carry it as `Retry-After`. Default: absent.
   */
  readonly retryAfter?: number;

  constructor(info: { counter: string; remaining: number; required: number; retryAfter?: number; message?: string }) {
    super(
      "limit_reached",
      info.message ?? `Limit reached on "${info.counter}": ${info.required} required, ${info.remaining} left.`,
      {
        counter: info.counter,
        remaining: info.remaining,
        required: info.required,
        ...(info.retryAfter !== undefined ? { retryAfter: info.retryAfter } : {}),
      },
    );
    this.name = "LimitReachedError";
    this.counter = info.counter;
    this.remaining = info.remaining;
    this.required = info.required;
    if (info.retryAfter !== undefined) this.retryAfter = info.retryAfter;
  }
}

/** The JSON body of every error response. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string } & Record<string, ErrorDetailValue>;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.prototype.hasOwnProperty.call(ERROR_CODES, value);
}

/** Turns an error body received over HTTP back into the same error class the server threw. */
export function errorFromBody(body: unknown, fallbackStatus = 500): MeterError {
  const err = (body as { error?: Record<string, unknown> } | null)?.error;
  if (!err || !isErrorCode(err.code)) {
    return new MeterError(fallbackStatus >= 500 ? "unavailable" : "internal", `Unexpected response (HTTP ${fallbackStatus}).`);
  }
  const message = typeof err.message === "string" ? err.message : err.code;
  if (err.code === "limit_reached") {
    return new LimitReachedError({
      counter: String(err.counter ?? ""),
      remaining: Number(err.remaining ?? 0),
      required: Number(err.required ?? 0),
      ...(typeof err.retryAfter === "number" ? { retryAfter: err.retryAfter } : {}),
      message,
    });
  }
  const details: ErrorDetails = {};
  for (const [k, v] of Object.entries(err)) {
    if (k === "code" || k === "message") continue;
    if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean") details[k] = v;
  }
  return new MeterError(err.code, message, details);
}
