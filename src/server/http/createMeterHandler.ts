import { MeterError } from "../../core/errors.js";
import type { Meter } from "../createMeter.js";
import { internalsOf } from "../internals.js";
import { liveHub, type LiveOptions } from "../live/liveHub.js";
import { checkShape, readJsonObject } from "./body.js";
import { BROWSER_TOKEN_PREFIX, verifyBrowserToken } from "./browserToken.js";
import { claimedMeter } from "./claimedMeter.js";
import { createCors, type CorsOptions } from "./cors.js";
import { createIdempotencyStore, idempotencyKey } from "./idempotency.js";
import { webIncoming, type Incoming } from "./incoming.js";
import { errorJson, json, toResponse, type Reply } from "./respond.js";
import { matchPath, type Route, type RouteContext } from "./routes.js";
import { bearer, secretKeyCheck } from "./secretKeys.js";

/** What `identify` may answer: a user id, or nothing for "not signed in". */
export type Identity = string | number | null | undefined;

export interface MeterHandlerOptions<Context = undefined> {
  /**
   * Who is calling a browser route, from the host app's own session (cookie, JWT…). Gets the
   * Web `Request` and whatever was passed as the handler's second argument (the Express
   * `req`, a Hono context…). Return the user id, or null/undefined for "not signed in" (401).
   * A `MeterError` thrown here is answered as is; anything else is a 500 `internal`.
   * Default: none — browser routes then accept only browser tokens (`meter.browserToken()`).
   */
  identify?: (request: Request, context: Context) => Identity | Promise<Identity>;
  /**
   * Keys accepted as `Authorization: Bearer <key>` on the `/v1` server routes (at least 24
   * characters each). Several at once let you rotate: add the new key, move the callers,
   * remove the old one. Default: none — every `/v1` route answers 401.
   */
  secretKeys?: string | string[];
  /**
   * Where the handler is mounted, stripped from the request path before routing: `"/api/meter"`
   * when a Next.js route handler or Hono sees the whole path. The Express adapter sets it for
   * you. Default `""`.
   */
  basePath?: string;
  /** CORS for the browser routes (never the `/v1` routes or the webhook). Default: off. */
  cors?: CorsOptions;
  /** Largest JSON body accepted, in bytes; larger is 413 `payload_too_large`. Default 65 536. */
  maxBodyBytes?: number;
  /** How long an `Idempotency-Key` stays bound to its first request, in ms. Default 86 400 000 (24 h). */
  idempotencyRetention?: number;
  /** The live usage stream. The first handler of a meter in a process sets these. Default: see {@link LiveOptions}. */
  live?: LiveOptions;
  /**
   * Called with every 5xx (`internal` bugs, `unavailable` database) before the generic answer
   * goes out; the client never sees the cause. Default: `console.error`.
   */
  onError?: (error: unknown, request: Request) => void;
}

/** A Web `Request` → `Response` function serving every meterkit route. */
export type MeterHandler<Context = undefined> = (request: Request, context?: Context) => Promise<Response>;

/** What a meter handler does, on any `Incoming`: the Web handler and the Node adapters' fast path both call it. */
export type MeterHandlerCore<Context = undefined> = ((incoming: Incoming, context?: Context) => Promise<Reply>) & {
  /** The handler's `maxBodyBytes`: the Node adapters buffer a body up to it (past their default 1 MiB). */
  readonly maxBodyBytes: number;
};

/** The core of each handler `createMeterHandler` made. */
const CORES = new WeakMap<MeterHandler<never>, MeterHandlerCore<never>>();

/**
 * The core behind a handler made by `createMeterHandler`, so the Node adapters can serve it
 * without building a Web `Request` and `Response` per call; undefined for any other function
 * (an app's own wrapper), which the adapters then call with a `Request`.
 */
export function meterHandlerCore<Context>(handler: MeterHandler<Context>): MeterHandlerCore<Context> | undefined {
  return CORES.get(handler as MeterHandler<never>) as MeterHandlerCore<Context> | undefined;
}

/**
 * The framework-free HTTP handler: routing, authentication, validation and error mapping for
 * the browser routes (`/usage`, `/usage/stream`, `/packs`, `/checkout`), the Stripe webhook and
 * the `/v1` server routes. Adapters (Express, Node, Next.js, Hono) only translate requests.
 */
export function createMeterHandler<Context = undefined>(meter: Meter, options: MeterHandlerOptions<Context> = {}): MeterHandler<Context> {
  const checkKey = secretKeyCheck(options.secretKeys);
  const cors = createCors(options.cors);
  const basePath = (options.basePath ?? "").replace(/\/+$/, "");
  const maxBodyBytes = options.maxBodyBytes ?? 65_536;
  const idempotency = createIdempotencyStore(internalsOf(meter), options.idempotencyRetention ?? 86_400_000);
  const onError = options.onError ?? ((err: unknown) => console.error("meterkit: request failed", err));
  const scope = internalsOf(meter).schemaName;

  /** The browser's user: a valid browser token, else the host app's `identify`. */
  const browserUser = async (incoming: Incoming, context: Context): Promise<string | null> => {
    const token = bearer(incoming);
    if (token?.startsWith(BROWSER_TOKEN_PREFIX)) return verifyBrowserToken(internalsOf(meter).browserTokenSecrets, scope, token);
    if (!options.identify) return null;
    const id = await options.identify(incoming.request(), context);
    if (id === null || id === undefined || id === "") return null;
    if (typeof id !== "string" && typeof id !== "number") {
      throw new TypeError(`identify() must return a user id (string or number) or null, got ${typeof id}.`);
    }
    return String(id);
  };

  /**
   * The one place a path is decoded and matched: routing, CORS and everything after read
   * this, so `/%76%31/…` is the `/v1` route it decodes to for every decision.
   */
  const locate = (incoming: Incoming): { url: URL; routes: Route[]; params: Record<string, string> } => {
    const url = incoming.url;
    if (basePath && url.pathname !== basePath && !url.pathname.startsWith(basePath + "/")) return { url, routes: [], params: {} };
    let segments: string[];
    try {
      segments = url.pathname.slice(basePath.length).split("/").filter(Boolean).map(decodeURIComponent);
    } catch {
      throw new MeterError("invalid_request", "The path is not valid percent-encoding.");
    }
    return { url, ...matchPath(segments) };
  };

  const run = async (incoming: Incoming, context: Context, located: ReturnType<typeof locate>, corsHeaders: Record<string, string>): Promise<Reply> => {
    // 1. Route. HEAD is served by the GET route (an answer without its body).
    const { url, routes, params } = located;
    if (routes.length === 0) return noRoute(incoming, url);
    const method = incoming.method === "HEAD" ? "GET" : incoming.method;
    const route = routes.find((r) => r.method === method);
    const allowed = routes.map((r) => r.method);
    if (!route) {
      if (incoming.method === "OPTIONS") {
        return routes[0]!.audience === "browser" ? cors.preflight(incoming.header("origin"), allowed) : { status: 204, headers: { allow: [...allowed, "OPTIONS"].join(", ") }, body: null };
      }
      throw new MeterError("method_not_allowed", `${incoming.method} is not allowed here; use ${allowed.join(" or ")}.`, { allow: allowed.join(", ") });
    }

    // 2. Authenticate.
    let userId = "";
    if (route.audience === "server") await authenticateServer(incoming, context);
    else if (route.audience === "browser") {
      const id = await browserUser(incoming, context);
      if (id === null) throw new MeterError("unauthenticated", "Sign in first: no user for this request.");
      userId = id;
    }

    // 3. Read and check the body of a server mutation before anything is written.
    let body: Record<string, unknown> = {};
    let key: string | undefined;
    if (route.audience === "server" && route.method !== "GET") {
      body = await readJsonObject(incoming, maxBodyBytes);
      checkShape(body, route.shape ?? {});
      key = idempotencyKey(incoming) ?? undefined;
    }

    const c: RouteContext = {
      meter,
      incoming,
      params,
      userId,
      idempotencyKey: key,
      body,
      headers: corsHeaders,
      maxBodyBytes,
      stream: (id) => openStream(id, incoming, corsHeaders),
    };
    // 4. Run it, once per Idempotency-Key and request: the key is claimed in the statement that
    //    writes (one round trip), so a failed write leaves it free.
    if (!key) return route.run(c);
    const claim = idempotency.claim(key, `${route.method} /${route.path.join("/")} ${JSON.stringify(params)}`, body);
    return route.run({ ...c, meter: claimedMeter(meter, claim) });
  };

  /** A secret key, or 403 for a browser that found its way here, or 401. */
  const authenticateServer = async (incoming: Incoming, context: Context) => {
    const presented = bearer(incoming);
    if (checkKey(presented)) return;
    const browser = await browserUser(incoming, context).catch(() => null);
    if (browser !== null) throw new MeterError("forbidden", "Browsers may read and buy, never write usage: the /v1 routes need a secret key.");
    throw new MeterError(
      "unauthenticated",
      presented === null ? "Send `Authorization: Bearer <secret key>` to use the /v1 routes." : "Unknown secret key.",
    );
  };

  const openStream = async (userId: string, incoming: Incoming, corsHeaders: Record<string, string>): Promise<Reply> => {
    // HEAD opens no stream (and takes no slot): the user is checked as a GET would be.
    const stream = incoming.method === "HEAD" ? (await meter.usage(userId), null) : await liveHub(internalsOf(meter), options.live).open(userId, incoming.signal());
    return {
      status: 200,
      body: stream,
      headers: {
        ...corsHeaders,
        "content-type": "text/event-stream; charset=utf-8",
        // no-transform keeps compression middleware from buffering the events.
        "cache-control": "no-store, no-transform",
        "x-accel-buffering": "no",
        "x-content-type-options": "nosniff",
      },
    };
  };

  const answer = async (incoming: Incoming, context: Context | undefined): Promise<Reply> => {
    const origin = incoming.header("origin");
    let corsHeaders: Record<string, string> = {};
    try {
      const located = locate(incoming);
      // CORS applies to the browser routes only, judged on the decoded path: never the /v1
      // routes, the webhook or a path that is no route.
      if (located.routes[0]?.audience === "browser") corsHeaders = cors.headers(origin);
      return await run(incoming, context as Context, located, corsHeaders);
    } catch (err) {
      if (err instanceof MeterError) {
        if (err.status >= 500) onError(err, incoming.request());
        const extra: Record<string, string> = { ...corsHeaders };
        if (err.code === "method_not_allowed" && typeof err.details.allow === "string") extra.allow = err.details.allow;
        return errorJson(err, extra);
      }
      onError(err, incoming.request());
      return json(500, { error: { code: "internal", message: "Internal error." } }, corsHeaders);
    }
  };
  // HEAD answers like GET — the same status and headers, errors included — without a body.
  const core: MeterHandlerCore<Context> = Object.assign(
    async (incoming: Incoming, context?: Context) => (incoming.method === "HEAD" ? withoutBody(await answer(incoming, context)) : answer(incoming, context)),
    { maxBodyBytes },
  );
  const handler: MeterHandler<Context> = async (request, context) => toResponse(await core(webIncoming(request), context));
  CORES.set(handler as MeterHandler<never>, core as MeterHandlerCore<never>);
  return handler;
}

/** A GET answer for a HEAD request: the same status and headers, the body dropped unread. */
async function withoutBody(reply: Reply): Promise<Reply> {
  if (reply.body instanceof ReadableStream) await reply.body.cancel().catch(() => {});
  return { ...reply, body: null };
}

function noRoute(incoming: Incoming, url: URL): never {
  throw new MeterError("not_found", `No route ${incoming.method} ${url.pathname}.`, { reason: "no_route" });
}
