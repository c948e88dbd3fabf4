import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";

/** How long a client should wait before asking again, in seconds. */
const RETRY_AFTER_S = 1;

export interface WhenReady {
  /** The server's request listener from the first moment it listens. */
  listener: RequestListener;
  /** Hands every later request to `app`. */
  ready(app: RequestListener): void;
}

/**
 * The demo listens before it is ready (the Stripe success URL needs the port), so a browser
 * that connects during start-up must get an answer rather than wait forever: 503
 * `unavailable` with `Retry-After` until `ready(app)` — a page that reloads itself for a
 * browser asking for HTML, the JSON error body everywhere else.
 */
export function whenReady(): WhenReady {
  let app: RequestListener | null = null;
  const listener: RequestListener = (req, res) => {
    if (app) return void app(req, res);
    starting(req, res);
  };
  return { listener, ready: (a) => void (app = a) };
}

function starting(req: IncomingMessage, res: ServerResponse): void {
  const message = "The demo is starting: try again in a moment.";
  const html = req.method === "GET" && (req.headers.accept ?? "").includes("text/html");
  res.statusCode = 503;
  res.setHeader("retry-after", String(RETRY_AFTER_S));
  res.setHeader("cache-control", "no-store");
  if (html) {
    res.setHeader("content-type", "text/html; charset=utf-8");
    res.end(`<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="${RETRY_AFTER_S}"><title>Starting…</title><p>${message}</p>`);
  } else {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ error: { code: "unavailable", message } }));
  }
  // The body may not have been read: drop it rather than keep the socket busy.
  req.resume();
}
