import type { ErrorCode, ErrorDetails } from "../core/errors.js";

/** Headers sent with every request to the meter routes, or a function that returns them (e.g. a fresh token). */
export type HeadersOption = HeadersInit | (() => HeadersInit | Promise<HeadersInit>);

/** Sends one request to a meter route (path relative to `baseUrl`) with the provider's fetch and headers. */
export type MeterSend = (path: string, init?: RequestInit) => Promise<Response>;
/**
 * What a meter route's error answer rejects with: an `Error` with the shape of core's
 * `MeterError` (`code`, `status`, `details`, `name: "MeterError"`). It is not an instance of
 * that class on purpose: the class brings the whole error-code registry, which would add a
 * third to the bytes the balance badge ships. Check `error.code`, not `instanceof`.
 */
export interface MeterRequestError extends Error {
  code: ErrorCode;
  status: number;
  details: ErrorDetails;
}

/** Calls one meter route; resolves with its JSON or rejects with a `MeterRequestError` (network failures: the fetch error). */
export type MeterRequest = <T>(path: string, init?: RequestInit) => Promise<T>;

export interface Transport {
  fetch: typeof fetch;
  send: MeterSend;
  request: MeterRequest;
}

/** `options()` is read per call, so the latest `fetch` and `headers` props apply without re-creating anything. */
export function createTransport(baseUrl: string, options: () => { fetch?: typeof fetch | undefined; headers?: HeadersOption | undefined }): Transport {
  // The global fetch is looked up per call too: tests and polyfills may replace it after render.
  const fetchImpl: typeof fetch = (input, init) => (options().fetch ?? fetch)(input, init);
  const send: MeterSend = async (path, init = {}) => {
    const given = options().headers;
    const headers = new Headers(typeof given == "function" ? await given() : given);
    new Headers(init.headers).forEach((value, key) => headers.set(key, value));
    return fetchImpl(baseUrl + path, { ...init, headers });
  };
  const request: MeterRequest = async <T,>(path: string, init?: RequestInit) => {
    const res = await send(path, init);
    const body: unknown = await res.json().catch(() => null);
    if (res.ok) return body as T;
    const { code, message, ...details } = (body as { error?: Record<string, unknown> } | null)?.error ?? {};
    throw Object.assign(new Error(typeof message == "string" ? message : `HTTP ${res.status}`), {
      name: "MeterError",
      // An answer without the error body (a proxy's 502, say) gets the code core would give it.
      code: typeof code == "string" ? code : res.status < 500 ? "internal" : "unavailable",
      status: res.status,
      details,
    });
  };
  return { fetch: fetchImpl, send, request };
}
