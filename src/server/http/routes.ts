import { MeterError } from "../../core/errors.js";
import type { Meter } from "../createMeter.js";
import { internalsOf } from "../internals.js";
import { readBody, readJsonObject, type Shape } from "./body.js";
import { HISTORY_ROUTES } from "./historyRoutes.js";
import { idempotencyKey } from "./idempotency.js";
import type { Incoming } from "./incoming.js";
import { json, type Reply } from "./respond.js";

/** Who may call a route: the identified browser user, a holder of a secret key, or Stripe. */
export type Audience = "browser" | "server" | "webhook";

export interface RouteContext {
  meter: Meter;
  incoming: Incoming;
  params: Record<string, string>;
  /** The identified user (browser routes only). */
  userId: string;
  /** The `Idempotency-Key` header (server mutations only). */
  idempotencyKey: string | undefined;
  /** The JSON body, read and shape-checked before the key is claimed. */
  body: Record<string, unknown>;
  /** Extra response headers (CORS). */
  headers: Record<string, string>;
  /** Opens a live usage stream for the user. */
  stream(userId: string): Promise<Reply>;
  maxBodyBytes: number;
}

export interface Route {
  /** Segments; `:name` captures one. */
  path: string[];
  method: "GET" | "POST" | "PUT";
  audience: Audience;
  /**
   * Body fields (`name?` optional) of a server mutation, or its alternative forms, checked
   * before anything is written.
   */
  shape?: Shape | readonly Shape[];
  run(c: RouteContext): Promise<Reply>;
}

/** Largest Stripe webhook body accepted (Stripe events are a few kB). */
export const WEBHOOK_MAX_BYTES = 1_048_576;

function billing(meter: Meter) {
  const b = internalsOf(meter).billing;
  if (!b) throw new MeterError("not_found", "Billing is not configured: pass `stripe` to createMeter() to sell credit packs.", { reason: "billing_not_configured" });
  return b;
}

/** Lets a body omit a field or send null for it (JSON has no undefined). */
const opt = <T>(v: unknown) => (v === null ? undefined : (v as T | undefined));

/**
 * Every route of the handler, one line of intent each. Browser routes only ever act for
 * `c.userId` (from `identify` or a browser token); anything the browser says about who it is
 * — query, body, headers — is not read.
 */
export const ROUTES: Route[] = [
  // --- browser: read and buy
  {
    path: ["usage"],
    method: "GET",
    audience: "browser",
    run: async (c) => json(200, await c.meter.usage(c.userId), c.headers),
  },
  {
    path: ["usage", "stream"],
    method: "GET",
    audience: "browser",
    run: (c) => c.stream(c.userId),
  },
  ...HISTORY_ROUTES,
  {
    path: ["packs"],
    method: "GET",
    audience: "browser",
    run: async (c) => json(200, { packs: billing(c.meter).packs() }, c.headers),
  },
  {
    path: ["checkout"],
    method: "POST",
    audience: "browser",
    run: async (c) => {
      const hooks = billing(c.meter);
      const body = await readJsonObject(c.incoming, c.maxBodyBytes);
      // Only these fields reach billing: a `userId` in the body is ignored.
      const { packId, successUrl, cancelUrl, saveCard } = body;
      return json(200, await hooks.checkout(c.userId, { packId, successUrl, cancelUrl, saveCard }), c.headers);
    },
  },
  // --- browser: auto top-up of the signed-in user (docs/auto-top-up.md)
  {
    path: ["auto-top-up"],
    method: "GET",
    audience: "browser",
    run: async (c) => json(200, await c.meter.autoTopUp.get(c.userId), { ...c.headers, "cache-control": "no-store" }),
  },
  {
    path: ["auto-top-up"],
    method: "PUT",
    audience: "browser",
    // The body is the settings; set() refuses unknown fields (a `userId` too) as invalid_request.
    // An Idempotency-Key makes it once per key and body (per user), like the other mutations.
    run: async (c) => {
      const body = await readJsonObject(c.incoming, c.maxBodyBytes);
      const key = idempotencyKey(c.incoming) ?? undefined;
      return json(200, await c.meter.autoTopUp.set(c.userId, body as never, { idempotencyKey: key }), c.headers);
    },
  },
  {
    path: ["auto-top-up", "setup"],
    method: "POST",
    audience: "browser",
    run: async (c) => {
      const { successUrl, cancelUrl } = await readJsonObject(c.incoming, c.maxBodyBytes);
      return json(200, await c.meter.autoTopUp.setupCheckout(c.userId, { successUrl, cancelUrl }), c.headers);
    },
  },
  {
    path: ["stripe", "webhook"],
    method: "POST",
    audience: "webhook",
    run: async (c) => {
      const hooks = billing(c.meter);
      const raw = await readBody(c.incoming, WEBHOOK_MAX_BYTES);
      return json(200, await hooks.webhook(raw, c.incoming.header("stripe-signature")));
    },
  },

  // --- server: the ledger over HTTP (meterkit/client)
  {
    path: ["v1", "reservations"],
    method: "POST",
    audience: "server",
    // One counter ({ meterKey, amount }) or several at once ({ amounts: { meterKey: amount } }),
    // the two forms of meter.reserve.
    shape: [
      { userId: "string", meterKey: "string", amount: "number", "model?": "string", "ttl?": "number", "metadata?": "object" },
      { userId: "string", amounts: "amounts", "model?": "string", "ttl?": "number", "metadata?": "object" },
    ],
    run: async ({ meter, body: b, idempotencyKey }) => {
      const options = { model: opt<string>(b.model), ttl: opt<number>(b.ttl), metadata: opt<Record<string, unknown>>(b.metadata), idempotencyKey };
      const r =
        b.amounts === undefined
          ? await meter.reserve(b.userId as string, b.meterKey as string, b.amount as number, options)
          : await meter.reserve(b.userId as string, b.amounts as Record<string, number>, options);
      // A denial is a normal answer; one that renews says when, as a 402 would (Retry-After).
      return json(200, r, !r.allowed && r.retryAfter !== undefined ? { "retry-after": String(r.retryAfter) } : {});
    },
  },
  {
    path: ["v1", "reservations", ":id", "commit"],
    method: "POST",
    audience: "server",
    shape: { "actual?": ["number", "amounts"], "usage?": "object" },
    run: async ({ meter, body: b, params }) => json(200, await meter.commit(params.id!, { actual: opt(b.actual), usage: opt(b.usage) })),
  },
  {
    path: ["v1", "reservations", ":id", "release"],
    method: "POST",
    audience: "server",
    shape: {},
    run: async ({ meter, params }) => json(200, await meter.release(params.id!)),
  },
  {
    path: ["v1", "events"],
    method: "POST",
    audience: "server",
    shape: { userId: "string", meterKey: "string", amount: "number", "reservationId?": "string", "model?": "string", "metadata?": "object" },
    run: async ({ meter, body: b, idempotencyKey }) =>
      json(
        200,
        await meter.track(b.userId as string, b.meterKey as string, b.amount as number, {
          reservationId: opt(b.reservationId),
          model: opt(b.model),
          metadata: opt(b.metadata),
          idempotencyKey,
        }),
      ),
  },
  {
    path: ["v1", "grants"],
    method: "POST",
    audience: "server",
    shape: { userId: "string", counterKey: "string", amount: "number", "expiresAt?": "string", "source?": "string", "metadata?": "object" },
    run: async ({ meter, body: b, idempotencyKey }) =>
      json(
        200,
        await meter.grant(b.userId as string, b.counterKey as string, b.amount as number, {
          expiresAt: opt(b.expiresAt),
          source: opt(b.source),
          metadata: opt(b.metadata),
          idempotencyKey,
        }),
      ),
  },
  {
    path: ["v1", "subscriptions", ":userId"],
    method: "PUT",
    audience: "server",
    shape: { planId: "string", "customLimits?": "object", "startedAt?": "string" },
    run: async ({ meter, body: b, params }) =>
      json(
        200,
        await meter.upsertSubscription({
          userId: params.userId!,
          planId: b.planId as string,
          customLimits: opt(b.customLimits),
          startedAt: opt(b.startedAt),
        }),
      ),
  },
  {
    path: ["v1", "users", ":userId", "usage"],
    method: "GET",
    audience: "server",
    run: async ({ meter, params }) => json(200, await meter.usage(params.userId!)),
  },
];

/** The routes whose path matches (any method), with the captured segments. */
export function matchPath(segments: string[]): { routes: Route[]; params: Record<string, string> } {
  const found: Route[] = [];
  let params: Record<string, string> = {};
  for (const route of ROUTES) {
    if (route.path.length !== segments.length) continue;
    const p: Record<string, string> = {};
    const ok = route.path.every((part, i) => {
      const seg = segments[i]!;
      if (part.startsWith(":")) {
        p[part.slice(1)] = seg;
        return true;
      }
      return part === seg;
    });
    if (ok) {
      found.push(route);
      params = p;
    }
  }
  return { routes: found, params };
}
