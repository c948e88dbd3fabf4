import type { ErrorCode, ErrorDetails } from "../core/errors.js";

/** Headers sent with every request to the meter routes, or a function that returns them (e.g. a fresh token). */
export type HeadersOption = HeadersInit | (() => HeadersInit | Promise<HeadersInit>);

/**
 * What a meter route's error answer rejects with: an `Error` with `code`, `status` and `details`
 * like core's `MeterError`, and `name: "MeterError"`. It is not core's class on purpose: that
 * brings the whole error-code registry, a third of the bytes the balance badge ships. Narrow an
 * unknown error with {@link isMeterError}, which accepts both.
 */
export interface MeterRequestError extends Error {
  name: "MeterError";
  /** The wire code: `"unauthenticated"`, `"unavailable"`, `"limit_reached"`, … */
  code: ErrorCode;
  /** The HTTP status. */
  status: number;
  /** The error body's other fields (`counter`, `remaining`, `required` for `limit_reached`). */
  details: ErrorDetails;
}

/**
 * True for an error a meter route answered (or core's `MeterError` from `meterkit`), false for
 * anything else (a network failure is the fetch's own `TypeError`).
 */
export function isMeterError(error: unknown): error is MeterRequestError {
  const e = error as Partial<MeterRequestError> | null;
  return error instanceof Error && typeof e?.code === "string" && typeof e.status === "number";
}

/** Where the meter routes are and how to reach them. */
export interface Transport {
  baseUrl: string;
  /** The provider's latest props, read per call, so new `fetch` and `headers` props apply without re-creating anything. */
  own: { props: { fetch?: typeof fetch | undefined; headers?: HeadersOption | undefined } };
}

/** Sends one request to a meter route (path relative to `baseUrl`) with the provider's fetch and headers. */
export async function send({ baseUrl, own: { props } }: Transport, path: string, init: RequestInit = {}): Promise<Response> {
  const given = props.headers;
  const headers = new Headers(typeof given == "function" ? await given() : given);
  new Headers(init.headers).forEach((value, key) => headers.set(key, value));
  // The global fetch is looked up per call too: tests and polyfills may replace it after render.
  return (props.fetch ?? fetch)(baseUrl + path, { ...init, headers });
}

/** Calls one meter route; resolves with its JSON or rejects with a `MeterRequestError` (network failures: the fetch error). */
export async function request<T>(transport: Transport, path: string, init?: RequestInit): Promise<T> {
  const res = await send(transport, path, init);
  const body: unknown = await res.json().catch(() => null);
  if (res.ok) return body as T;
  // An answer without the error body (a proxy's 502 page, say) gets the code core would give it.
  const {
    code = res.status < 500 ? "internal" : "unavailable",
    message = `HTTP ${res.status}`,
    ...details
  } = (body as { error?: { code?: string; message?: string } } | null)?.error ?? {};
  throw Object.assign(new Error(message), { name: "MeterError", code, status: res.status, details });
}
