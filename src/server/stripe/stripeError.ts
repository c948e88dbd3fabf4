import { MeterError } from "../../core/errors.js";

interface StripeLikeError {
  type?: string;
  statusCode?: number;
  code?: string;
  message?: string;
}

/** True when a Stripe call may succeed if tried again: no connection, a timeout, a 5xx, a 429. */
export function isRetryableStripeError(err: unknown): boolean {
  const e = (err ?? {}) as StripeLikeError;
  if (e.type === "StripeConnectionError" || e.type === "StripeAPIError" || e.type === "StripeRateLimitError") return true;
  if (e.type === "StripeIdempotencyError") return false;
  return typeof e.statusCode === "number" ? e.statusCode >= 500 || e.statusCode === 429 : e.type === undefined;
}

/**
 * Maps an error of a Stripe call to a MeterError. Stripe's own message stays in `cause` (for
 * logs), not in the message a browser may see.
 */
export function fromStripeError(err: unknown, what: string): MeterError {
  if (err instanceof MeterError) return err;
  if (isRetryableStripeError(err)) {
    return new MeterError("unavailable", `Stripe could not be reached to ${what}; retry shortly.`, {}, { cause: err });
  }
  return new MeterError("internal", `Stripe refused to ${what}; see the server logs.`, {}, { cause: err });
}

/** Stripe's message and code, for logs and sync reports. */
export function describeStripeError(err: unknown): string {
  const e = (err ?? {}) as StripeLikeError;
  const status = typeof e.statusCode === "number" ? ` (HTTP ${e.statusCode})` : "";
  return `${e.type ?? "Error"}${status}: ${e.message ?? String(err)}`;
}
