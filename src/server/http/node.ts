import type { IncomingMessage, ServerResponse } from "node:http";
import { MeterError } from "../../core/errors.js";
import { tooLarge } from "./body.js";
import { bindConnectionSignal } from "./connectionSignal.js";
import { meterHandlerCore, type MeterHandler } from "./createMeterHandler.js";
import type { Incoming } from "./incoming.js";
import { bufferedText, errorJson, type Reply } from "./respond.js";

/**
 * Most a Node request body is buffered before the handler sees it, unless the handler's own
 * `maxBodyBytes` is larger (then that): past it, the handler answers 413 without more being read.
 */
const NODE_BODY_CAP = 1_048_576;

/** What the adapters buffer for a handler whose limit is `maxBodyBytes` (unknown: the default cap). */
function bodyCap(maxBodyBytes: number | undefined): number {
  return Math.max(NODE_BODY_CAP, maxBodyBytes ?? 0);
}

/**
 * What the Node adapters read from an `IncomingMessage` before any handler runs: the URL, the
 * body (buffered), and for a GET the signal that aborts when the client leaves. Both a Web
 * `Request` (`toRequest`) and the fast path's `Incoming` (`toIncoming`) are made from this, so
 * they see the same URL, headers and bytes.
 */
interface NodeParts {
  req: IncomingMessage;
  method: string;
  url: URL;
  /** Only the live stream (a GET) needs to know when the client leaves. */
  gone: AbortSignal | null;
  /** Whether the body was read (any method but GET and HEAD): then `transfer-encoding` is dropped and `content-length` is `contentLength`. */
  read: boolean;
  bytes: Uint8Array<ArrayBuffer> | undefined;
  contentLength: string | null;
}

/**
 * Reads the request. A body some middleware already parsed (`express.json()`, `express.raw()`)
 * is used as it is; otherwise it is read here (Node streams are much cheaper than Web streams),
 * stopping one byte past the cap so the handler's own limit answers 413 without buffering more.
 */
async function readParts(req: IncomingMessage, res: ServerResponse, url: string, cap: number): Promise<NodeParts> {
  const method = req.method ?? "GET";
  let gone: AbortSignal | null = null;
  let bytes: Uint8Array<ArrayBuffer> | undefined;
  let contentLength = header(req, "content-length");
  const read = method !== "GET" && method !== "HEAD";
  if (method === "GET") {
    const controller = new AbortController();
    res.once("close", () => controller.abort());
    gone = controller.signal;
  } else if (read) {
    const parsed = (req as { body?: unknown }).body;
    let buffer: Buffer;
    if (parsed !== undefined && (req.readableEnded || (req as { _body?: boolean })._body)) {
      // Re-serialised, but the original Content-Type is kept: the JSON-only rule of browser
      // POSTs (no cross-site form can send application/json without a preflight) is judged on
      // what the browser sent, whatever parser ran first (express.urlencoded(), json({ type: "*/*" })).
      buffer = Buffer.isBuffer(parsed) ? parsed : Buffer.from(typeof parsed === "string" ? parsed : JSON.stringify(parsed));
    } else {
      buffer = await readNodeBody(req, cap);
    }
    if (buffer.byteLength > 0 || contentLength !== null) {
      // A declared length over the cap was not read at all: keep it so the handler answers 413.
      if (Number(contentLength) <= cap) contentLength = String(buffer.byteLength);
      bytes = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength) as Uint8Array<ArrayBuffer>;
    }
  }
  return { req, method, url: new URL(url, `http://${hostOf(req)}`), gone, read, bytes, contentLength };
}

/** Node's `IncomingMessage` as a Web `Request`, from what `readParts` read. Throws what the `Request` constructor throws. */
function toRequest(parts: NodeParts): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(parts.req.headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else headers.set(name, value);
  }
  const init: RequestInit = { method: parts.method, headers };
  if (parts.read) {
    headers.delete("transfer-encoding");
    if (parts.contentLength !== null) headers.set("content-length", parts.contentLength);
    if (parts.bytes) init.body = parts.bytes;
  }
  if (parts.gone) init.signal = parts.gone;
  const request = new Request(parts.url, init);
  if (parts.gone) bindConnectionSignal(request, parts.gone);
  return request;
}

/** Methods the `Request` constructor refuses (Node's parser accepts them). */
const NOT_FETCH_METHODS = new Set(["CONNECT", "TRACE", "TRACK"]);

/**
 * Whether `toIncoming` serves this request as `toRequest` would: a `Request` could be built
 * from it. The rest (a TRACE, a URL with credentials) goes through `toRequest`, which throws as
 * it always did.
 */
function fastPathFits(parts: NodeParts): boolean {
  return !NOT_FETCH_METHODS.has(parts.method) && parts.url.username === "" && parts.url.password === "";
}

/**
 * The fast path's request: headers read from the `IncomingMessage` as a `Headers` built from it
 * would give them, the buffered body, and a `Request` only if `identify` or `onError` asks.
 */
function toIncoming(parts: NodeParts): Incoming {
  const { req } = parts;
  let consumed = false;
  let request: Request | undefined;
  let signal = parts.gone;
  return {
    method: parts.method,
    url: parts.url,
    header(name) {
      if (parts.read && name === "content-length") return parts.contentLength;
      if (parts.read && name === "transfer-encoding") return null;
      return header(req, name);
    },
    async bytes(limit) {
      // Read once, like a body stream.
      if (consumed || !parts.bytes) return new Uint8Array(0);
      consumed = true;
      if (parts.bytes.byteLength > limit) throw tooLarge(limit);
      return parts.bytes;
    },
    // A request that is not a GET has no use for one: it never aborts, as a Request's own signal.
    signal: () => (signal ??= new AbortController().signal),
    request: () => (request ??= toRequest(parts)),
  };
}

/** HTTP whitespace at either end, which `Headers` strips from every value. */
const EDGE_SPACE = /^[\t\n\r ]+|[\t\n\r ]+$/g;

/** A request header as `Headers.get` gives it: repeated values joined, whitespace at the ends removed. */
function header(req: IncomingMessage, name: string): string | null {
  const value = req.headers[name];
  if (value === undefined) return null;
  return Array.isArray(value) ? value.map((v) => v.replace(EDGE_SPACE, "")).join(", ") : value.replace(EDGE_SPACE, "");
}

/**
 * Node's `IncomingMessage` as a Web `Request`. `url` is the path and query to route on
 * (Express passes its mount-relative `req.url`). A body some middleware already parsed
 * (`express.json()`, `express.raw()`) is used as it is; otherwise it is read here, stopping
 * one byte past the cap so the handler's own limit answers 413 without buffering more.
 * `signal` aborts when the client goes away.
 */
export async function toWebRequest(
  req: IncomingMessage,
  res: ServerResponse,
  url = req.url ?? "/",
  options: ToWebRequestOptions = {},
): Promise<Request> {
  return toRequest(await readParts(req, res, url, bodyCap(options.maxBodyBytes)));
}

/** Options of {@link toWebRequest}. */
export interface ToWebRequestOptions {
  /**
   * The `maxBodyBytes` of the handler the request is for, when it is over 1 MiB: a body is
   * buffered up to the larger of the two (and one byte past it, so the handler answers 413).
   * Default: 1 MiB (the default handler limit is 64 KiB).
   */
  maxBodyBytes?: number;
}

// RFC 3986 host: a registered name (unreserved and sub-delims; no "%", "/", spaces) or a
// bracketed IP literal, then an optional port.
const HOST = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{0,5})?$/;

/** The request's Host, checked: a malformed one is 400 `invalid_request`, never a dropped connection or a 500. */
function hostOf(req: IncomingMessage): string {
  const host = req.headers.host;
  if (host === undefined || host === "") return "localhost";
  if (!HOST.test(host)) throw new MeterError("invalid_request", "The Host header is not a valid host.", { field: "host" });
  return host;
}

function readNodeBody(req: IncomingMessage, cap: number): Promise<Buffer> {
  if (Number(req.headers["content-length"]) > cap) return Promise.resolve(Buffer.alloc(0));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.byteLength;
      if (size > cap) {
        // Enough to know it is too large; the rest is discarded, the connection kept for the 413.
        req.off("data", onData);
        req.resume();
        resolve(Buffer.concat(chunks));
      }
    };
    req.on("data", onData);
    req.once("end", () => resolve(Buffer.concat(chunks)));
    req.once("error", reject);
  });
}

/**
 * Serves one Node request with a meter handler. A handler made by `createMeterHandler` runs on
 * the `IncomingMessage` itself and its answer is written straight to the `ServerResponse`: no
 * Web `Request`, `Headers` or `Response` per call (they were a fifth of the handler process's
 * CPU and much of its garbage). Any other handler (an app's own wrapper) gets a Web `Request`
 * and its `Response` is written as it comes. Rejects when the request could not be read or
 * the handler failed; the caller destroys the socket or hands the error on (Express's `next`).
 */
export async function serveNode<Context>(
  handler: (request: Request, context?: Context) => Promise<Response>,
  req: IncomingMessage,
  res: ServerResponse,
  url: string,
  context: (req: IncomingMessage) => Context,
): Promise<void> {
  const core = meterHandlerCore(handler as MeterHandler<Context>);
  let parts: NodeParts;
  try {
    parts = await readParts(req, res, url, bodyCap(core?.maxBodyBytes));
  } catch (err) {
    // A request that is not even a valid URL (a malformed Host) gets meterkit's JSON 400.
    if (err instanceof MeterError) return writeReply(res, errorJson(err));
    throw err;
  }
  if (core && fastPathFits(parts)) return writeReply(res, await core(toIncoming(parts), context(req)));
  return sendWebResponse(res, await handler(toRequest(parts), context(req)));
}

/** Writes a meter handler's answer: the same status, headers and bytes `sendWebResponse` writes for its `Response`. */
export async function writeReply(res: ServerResponse, reply: Reply): Promise<void> {
  res.statusCode = reply.status;
  // In the order a Web `Headers` lists them (sorted), as `sendWebResponse` sets them.
  for (const name of Object.keys(reply.headers).sort()) res.setHeader(name, reply.headers[name]!);
  if (reply.body === null) {
    res.end();
    return;
  }
  if (typeof reply.body === "string") {
    res.setHeader("content-length", Buffer.byteLength(reply.body));
    res.end(reply.body);
    return;
  }
  return pipeStream(res, reply.body);
}

/** Writes a Web `Response` to Node's `ServerResponse`, honouring backpressure and stopping when the client leaves. */
export async function sendWebResponse(res: ServerResponse, response: Response): Promise<void> {
  res.statusCode = response.status;
  const cookies = response.headers.getSetCookie();
  response.headers.forEach((value, name) => {
    if (name !== "set-cookie") res.setHeader(name, value);
  });
  if (cookies.length > 0) res.setHeader("set-cookie", cookies);
  if (!response.body) {
    res.end();
    return;
  }
  // A JSON answer of the handler: its text as it was built, not read back through its stream.
  const text = response.bodyUsed ? undefined : bufferedText(response);
  if (text !== undefined) {
    res.setHeader("content-length", Buffer.byteLength(text));
    res.end(text);
    return;
  }
  if (!response.headers.get("content-type")?.startsWith("text/event-stream")) {
    const bytes = Buffer.from(await response.arrayBuffer());
    res.setHeader("content-length", bytes.byteLength);
    res.end(bytes);
    return;
  }
  return pipeStream(res, response.body);
}

/** Writes a stream of events (Server-Sent Events) as it comes, honouring backpressure and stopping when the client leaves. */
async function pipeStream(res: ServerResponse, body: ReadableStream<Uint8Array>): Promise<void> {
  // Streams need their headers out now, not with the first event.
  res.flushHeaders();
  const reader = body.getReader();
  const gone = () => void reader.cancel().catch(() => {});
  res.once("close", gone);
  // The stream errors when the server drops it (a client that stopped reading): that must end
  // the connection even while we wait for a drain that will never come — otherwise the socket
  // and its send buffer live on, and so does the client's slot in the stream limits.
  const failed = reader.closed.then(
    () => false,
    () => true,
  );
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!res.write(value)) {
        const dropped = await new Promise<boolean>((resolve) => {
          const go = (result: boolean) => {
            res.off("drain", drained);
            res.off("close", drained);
            resolve(result);
          };
          const drained = () => go(false);
          res.once("drain", drained);
          res.once("close", drained);
          void failed.then((f) => f && go(true));
        });
        if (dropped) throw new Error("meterkit: the stream was dropped");
        if (res.destroyed) return;
      }
    }
    res.end();
  } catch {
    res.destroy();
  } finally {
    res.off("close", gone);
  }
}

/**
 * A Node `http.createServer` listener for a meter handler (plain Node, Fastify's raw routes, …).
 * `context` gives the handler's `identify` its second argument (default: the `IncomingMessage`).
 * A handler from `createMeterHandler` is served without Web `Request`/`Response` objects
 * (`serveNode`); `identify` and `onError` still get a `Request`, built when they ask.
 */
export function toNodeHandler<Context = IncomingMessage>(
  handler: (request: Request, context?: Context) => Promise<Response>,
  context: (req: IncomingMessage) => Context = (req) => req as Context,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    serveNode(handler, req, res, req.url ?? "/", context).catch(() => res.destroy());
  };
}
