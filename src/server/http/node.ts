import type { IncomingMessage, ServerResponse } from "node:http";
import { MeterError } from "../../core/errors.js";
import { bindBody } from "./body.js";
import { bindConnectionSignal } from "./connectionSignal.js";
import { bufferedText, errorJson } from "./respond.js";

/** Most a Node request body is buffered before the handler sees it: over this, it is 413 whatever the route. */
const NODE_BODY_CAP = 1_048_576;

/**
 * Node's `IncomingMessage` as a Web `Request`. `url` is the path and query to route on
 * (Express passes its mount-relative `req.url`). A body some middleware already parsed
 * (`express.json()`, `express.raw()`) is used as it is; otherwise it is read here (Node
 * streams are much cheaper than Web streams), stopping one byte past the cap so the handler's
 * own limit answers 413 without buffering more. `signal` aborts when the client goes away.
 */
export function toWebRequest(req: IncomingMessage, res: ServerResponse, url = req.url ?? "/"): Promise<Request> {
  return nodeRequest(req, res, url, true);
}

/**
 * `toWebRequest`, where `stream: false` gives the `Request` no body stream of its own: the
 * bytes are bound to it for the handler's `readBody` (toNodeHandler, whose `Request` only the
 * meter handler reads).
 */
async function nodeRequest(req: IncomingMessage, res: ServerResponse, url: string, stream: boolean): Promise<Request> {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else headers.set(name, value);
  }
  const method = req.method ?? "GET";
  const init: RequestInit = { method, headers };
  // Only the live stream needs to know when the client leaves.
  let gone: AbortSignal | null = null;
  let body: Uint8Array<ArrayBuffer> | undefined;
  if (method === "GET") {
    const controller = new AbortController();
    res.once("close", () => controller.abort());
    init.signal = gone = controller.signal;
  } else if (method !== "HEAD") {
    const parsed = (req as { body?: unknown }).body;
    let bytes: Buffer;
    if (parsed !== undefined && (req.readableEnded || (req as { _body?: boolean })._body)) {
      // Re-serialised, but the original Content-Type is kept: the JSON-only rule of browser
      // POSTs (no cross-site form can send application/json without a preflight) is judged on
      // what the browser sent, whatever parser ran first (express.urlencoded(), json({ type: "*/*" })).
      bytes = Buffer.isBuffer(parsed) ? parsed : Buffer.from(typeof parsed === "string" ? parsed : JSON.stringify(parsed));
    } else {
      bytes = await readNodeBody(req);
    }
    headers.delete("transfer-encoding");
    if (bytes.byteLength > 0 || headers.get("content-length") !== null) {
      // A declared length over the cap was not read at all: keep it so the handler answers 413.
      if (Number(headers.get("content-length")) <= NODE_BODY_CAP) headers.set("content-length", String(bytes.byteLength));
      body = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) as Uint8Array<ArrayBuffer>;
      if (stream) init.body = body;
    }
  }
  const request = new Request(new URL(url, `http://${hostOf(req)}`), init);
  if (gone) bindConnectionSignal(request, gone);
  if (body && !stream) bindBody(request, body);
  return request;
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

/**
 * What an adapter answers when the request could not even be turned into a Web `Request`:
 * a `MeterError` (a malformed Host) as its JSON; anything else is not ours to answer.
 */
export function adapterErrorResponse(err: unknown): Response | null {
  return err instanceof MeterError ? errorJson(err) : null;
}

function readNodeBody(req: IncomingMessage): Promise<Buffer> {
  if (Number(req.headers["content-length"]) > NODE_BODY_CAP) return Promise.resolve(Buffer.alloc(0));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.byteLength;
      if (size > NODE_BODY_CAP) {
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
  // Streams (Server-Sent Events) need their headers out now, not with the first event.
  res.flushHeaders();
  const reader = response.body.getReader();
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
 * The Web `Request` it builds carries the body read from the socket for the meter handler
 * only (no body stream: `request.body` is null; the handler reads the bytes directly), and a
 * JSON answer is written from its text: the two Web-stream round trips were about a tenth of a
 * CPU profile of the handler process at 32 clients. `toWebRequest` still builds a complete `Request`.
 */
export function toNodeHandler<Context = IncomingMessage>(
  handler: (request: Request, context?: Context) => Promise<Response>,
  context: (req: IncomingMessage) => Context = (req) => req as Context,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    nodeRequest(req, res, req.url ?? "/", false).then(
      (request) =>
        handler(request, context(req))
          .then((response) => sendWebResponse(res, response))
          .catch(() => res.destroy()),
      (err: unknown) => {
        const answer = adapterErrorResponse(err);
        if (answer) void sendWebResponse(res, answer).catch(() => res.destroy());
        else res.destroy();
      },
    );
  };
}
