import { readStream } from "./body.js";
import { connectionSignal } from "./connectionSignal.js";

/**
 * One request as the meter handler reads it, whatever carried it: a Web `Request`
 * (`webIncoming`), or Node's `IncomingMessage` read directly by the Node adapters (`toIncoming`
 * in node.ts), which then build no `Request` unless something asks for one. Routing,
 * authentication, validation and the routes only ever read this, so both run the same code.
 */
export interface Incoming {
  /** The method, upper case. */
  readonly method: string;
  /** The absolute URL (routing decodes its path; history routes read its query). */
  readonly url: URL;
  /** A request header (name in lower case) as a Web `Headers` gives it: null when absent. */
  header(name: string): string | null;
  /**
   * The body's bytes, once (a second call gets none, like a consumed stream); rejects with
   * 413 `payload_too_large` as soon as more than `limit` bytes are seen. `readBody` (body.ts)
   * checks the declared length first.
   */
  bytes(limit: number): Promise<Uint8Array>;
  /** Aborts when the client's connection is gone (the live stream stops then). */
  signal(): AbortSignal;
  /** The request as a Web `Request`, for `identify` and `onError`; the Node adapters build it on first use. */
  request(): Request;
}

/** A Web `Request` as an `Incoming`. */
export function webIncoming(request: Request): Incoming {
  return {
    method: request.method,
    url: new URL(request.url),
    header: (name) => request.headers.get(name),
    bytes: (limit) => readStream(request.body, limit),
    signal: () => connectionSignal(request),
    request: () => request,
  };
}
