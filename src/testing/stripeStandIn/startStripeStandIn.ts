import { createHmac, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type {
  StripeStandInOptions,
  RecordedRequest,
  StandInFailure,
  StandInSession,
  StandInMeterEvent,
  StandInDelivery,
  StandInEvent,
  StripeStandIn,
} from "./types.js";
import { decodeStripeForm } from "./stripeForm.js";

const API_VERSION = "2026-10-28.endive";

function newId(prefix: string): string {
  return `${prefix}_test_${randomBytes(12).toString("base64url")}`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function formatMoney(amount: number, currency: string): string {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency: currency.toUpperCase() }).format(amount / 100);
  } catch {
    return `${amount} ${currency}`;
  }
}

/**
 * Starts the stand-in: `POST /v1/customers`, `POST /v1/checkout/sessions`, `GET /v1/checkout/sessions/:id`,
 * `POST /v1/billing/meter_events`, `POST /v1/refunds`, and a hosted checkout page at
 * `/checkout/:id` whose "Pay" sends a correctly signed `checkout.session.completed` to the
 * app. Development only: never expose it.
 */
export async function startStripeStandIn(options: StripeStandInOptions = {}): Promise<StripeStandIn> {
  const host = options.host ?? "127.0.0.1";
  const secret = options.webhookSecret ?? "whsec_standin";
  const prices = options.prices ?? {};
  const requests: RecordedRequest[] = [];
  const sessions = new Map<string, StandInSession>();
  const meterEvents: StandInMeterEvent[] = [];
  const meterIdentifiers = new Set<string>();
  const deliveries: StandInDelivery[] = [];
  const customers = new Map<string, Record<string, unknown>>();
  const idempotent = new Map<string, { status: number; body: string }>();
  const charges = new Map<string, { id: string; amount: number; currency: string; refunded: number; sessionId: string }>();
  const failures: Array<Required<StandInFailure>> = [];
  const hanging = new Set<ServerResponse>();
  const sockets = new Set<Socket>();
  let webhookUrl = options.webhookUrl;
  let base = "";

  const json = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "request-id": newId("req") });
    res.end(text);
    return text;
  };
  const apiError = (res: ServerResponse, status: number, message: string, type = "invalid_request_error", param?: string) =>
    json(res, status, { error: { type, message, ...(param ? { param } : {}) } });

  function sign(payload: string, o: { timestamp?: number; secret?: string } = {}): string {
    const t = o.timestamp ?? Math.floor(Date.now() / 1000);
    const v1 = createHmac("sha256", o.secret ?? secret).update(`${t}.${payload}`, "utf8").digest("hex");
    return `t=${t},v1=${v1}`;
  }

  async function deliver(event: StandInEvent, o: { timestamp?: number; secret?: string } = {}): Promise<StandInDelivery> {
    const payload = JSON.stringify(event, null, 2);
    let delivery: StandInDelivery;
    if (!webhookUrl) {
      delivery = { event, status: 0, body: "no webhookUrl configured" };
    } else {
      try {
        const res = await fetch(webhookUrl, {
          method: "POST",
          headers: { "content-type": "application/json; charset=utf-8", "stripe-signature": sign(payload, o), "user-agent": "Stripe/1.0 (meterkit stand-in)" },
          body: payload,
          signal: AbortSignal.timeout(10_000),
        });
        delivery = { event, status: res.status, body: await res.text() };
      } catch (err) {
        delivery = { event, status: 0, body: err instanceof Error ? err.message : String(err) };
      }
    }
    deliveries.push(delivery);
    return delivery;
  }

  function makeEvent(type: string, object: Record<string, unknown>): StandInEvent {
    return {
      id: newId("evt"),
      object: "event",
      type,
      api_version: API_VERSION,
      created: Math.floor(Date.now() / 1000),
      livemode: false,
      pending_webhooks: 1,
      request: { id: null, idempotency_key: null },
      data: { object: JSON.parse(JSON.stringify(object)) as Record<string, unknown> },
    };
  }
  const send = (type: string, object: Record<string, unknown>) => deliver(makeEvent(type, object));

  function sessionObject(s: StandInSession): Record<string, unknown> {
    const { description: _description, ...rest } = s;
    return rest;
  }

  function session(id: string): StandInSession {
    const s = sessions.get(id);
    if (!s) throw new Error(`Stripe stand-in: no Checkout Session ${id}.`);
    return s;
  }

  function chargeOf(s: StandInSession) {
    const pi = s.payment_intent;
    const charge = pi ? charges.get(pi) : undefined;
    if (!pi || !charge) throw new Error(`Stripe stand-in: Checkout Session ${s.id} has no payment yet.`);
    return { pi, charge };
  }

  async function pay(sessionId: string, o: { async?: boolean } = {}): Promise<StandInDelivery> {
    const s = session(sessionId);
    if (s.status !== "open") throw new Error(`Stripe stand-in: Checkout Session ${s.id} is ${s.status}.`);
    s.status = "complete";
    s.url = null;
    s.payment_intent = newId("pi");
    charges.set(s.payment_intent, { id: newId("ch"), amount: s.amount_total, currency: s.currency, refunded: 0, sessionId: s.id });
    s.payment_status = o.async ? "unpaid" : s.amount_total === 0 ? "no_payment_required" : "paid";
    return send("checkout.session.completed", sessionObject(s));
  }

  async function settle(sessionId: string, o: { succeed?: boolean } = {}): Promise<StandInDelivery> {
    const s = session(sessionId);
    const succeed = o.succeed ?? true;
    if (succeed) s.payment_status = "paid";
    return send(succeed ? "checkout.session.async_payment_succeeded" : "checkout.session.async_payment_failed", sessionObject(s));
  }

  function chargeObject(charge: { id: string; amount: number; currency: string; refunded: number }, pi: string) {
    return {
      id: charge.id,
      object: "charge",
      amount: charge.amount,
      amount_captured: charge.amount,
      amount_refunded: charge.refunded,
      currency: charge.currency,
      paid: true,
      captured: true,
      refunded: charge.refunded >= charge.amount,
      payment_intent: pi,
      status: "succeeded",
      livemode: false,
    };
  }

  function doRefund(pi: string, amount?: number) {
    const charge = charges.get(pi);
    if (!charge) return null;
    const left = charge.amount - charge.refunded;
    const n = Math.min(amount ?? left, left);
    charge.refunded += n;
    return { charge, n };
  }

  async function refund(sessionId: string, amount?: number): Promise<StandInDelivery> {
    const { pi } = chargeOf(session(sessionId));
    const r = doRefund(pi, amount)!;
    return send("charge.refunded", chargeObject(r.charge, pi));
  }

  async function dispute(sessionId: string, amount?: number): Promise<StandInDelivery> {
    const { pi, charge } = chargeOf(session(sessionId));
    return send("charge.dispute.created", {
      id: newId("dp"),
      object: "dispute",
      amount: amount ?? charge.amount - charge.refunded,
      currency: charge.currency,
      charge: charge.id,
      payment_intent: pi,
      reason: "fraudulent",
      status: "needs_response",
      livemode: false,
    });
  }

  // ------------------------------------------------------------------------------------
  // The API.

  function createSession(body: Record<string, unknown>, res: ServerResponse): string | undefined {
    const items = Array.isArray(body.line_items) ? (body.line_items as Array<Record<string, unknown>>) : [];
    if (body.mode !== "payment" && body.mode !== "subscription" && body.mode !== "setup") {
      return apiError(res, 400, "Missing required param: mode.", "invalid_request_error", "mode");
    }
    if (typeof body.success_url !== "string") return apiError(res, 400, "Missing required param: success_url.", "invalid_request_error", "success_url");
    if (items.length === 0) return apiError(res, 400, "Missing required param: line_items.", "invalid_request_error", "line_items");
    let total = 0;
    let currency = "";
    let description = "";
    for (const item of items) {
      const quantity = Number(item.quantity ?? 1);
      const pd = item.price_data as { currency?: string; unit_amount?: string; product_data?: { name?: string } } | undefined;
      if (typeof item.price === "string") {
        const p = prices[item.price];
        if (!p) return apiError(res, 400, `No such price: '${item.price}'`, "invalid_request_error", "line_items[0][price]");
        total += p.unitAmount * quantity;
        currency = p.currency;
        description ||= item.price;
      } else if (pd && pd.currency && pd.unit_amount !== undefined) {
        total += Number(pd.unit_amount) * quantity;
        currency = pd.currency;
        description ||= pd.product_data?.name ?? "";
      } else {
        return apiError(res, 400, "Each line item needs a price or price_data.", "invalid_request_error", "line_items");
      }
    }
    const id = newId("cs");
    const s: StandInSession = {
      id,
      object: "checkout.session",
      mode: body.mode,
      status: "open",
      payment_status: "unpaid",
      amount_total: total,
      amount_subtotal: total,
      currency,
      customer: typeof body.customer === "string" ? body.customer : null,
      client_reference_id: typeof body.client_reference_id === "string" ? body.client_reference_id : null,
      metadata: (body.metadata as Record<string, string> | undefined) ?? {},
      payment_intent: null,
      success_url: body.success_url,
      cancel_url: typeof body.cancel_url === "string" ? body.cancel_url : null,
      url: `${base}/checkout/${id}`,
      livemode: false,
      created: Math.floor(Date.now() / 1000),
      description,
    };
    sessions.set(id, s);
    return json(res, 200, sessionObject(s));
  }

  function createMeterEvent(body: Record<string, unknown>, res: ServerResponse): string {
    const payload = body.payload as Record<string, string> | undefined;
    if (typeof body.event_name !== "string" || !body.event_name) return apiError(res, 400, "Missing required param: event_name.", "invalid_request_error", "event_name");
    if (!payload || typeof payload !== "object") return apiError(res, 400, "Missing required param: payload.", "invalid_request_error", "payload");
    const now = Math.floor(Date.now() / 1000);
    const timestamp = body.timestamp === undefined ? now : Number(body.timestamp);
    if (!Number.isInteger(timestamp) || timestamp < now - 35 * 86_400 || timestamp > now + 300) {
      return apiError(res, 400, "Timestamp must be within the past 35 calendar days or up to 5 minutes in the future.", "invalid_request_error", "timestamp");
    }
    const value = payload.value;
    if (value !== undefined && !/^\d+$/.test(value)) return apiError(res, 400, "payload[value] must be a whole number.", "invalid_request_error", "payload[value]");
    const identifier = typeof body.identifier === "string" ? body.identifier : newId("mev");
    if (identifier.length > 100) return apiError(res, 400, "identifier must be at most 100 characters.", "invalid_request_error", "identifier");
    const event: StandInMeterEvent = { event_name: body.event_name, identifier, timestamp, payload };
    // Stripe enforces identifier uniqueness: a repeat is not counted twice.
    if (!meterIdentifiers.has(identifier)) {
      meterIdentifiers.add(identifier);
      meterEvents.push(event);
    }
    return json(res, 200, { object: "billing.meter_event", created: now, livemode: false, ...event });
  }

  function createCustomer(body: Record<string, unknown>, res: ServerResponse): string {
    const customer = { id: newId("cus"), object: "customer", created: Math.floor(Date.now() / 1000), livemode: false, metadata: {}, ...body };
    customers.set(customer.id, customer);
    return json(res, 200, customer);
  }

  function createRefund(body: Record<string, unknown>, res: ServerResponse): string {
    const pi = typeof body.payment_intent === "string" ? body.payment_intent : "";
    const r = doRefund(pi, body.amount === undefined ? undefined : Number(body.amount));
    if (!r) return apiError(res, 404, `No such payment_intent: '${pi}'`, "invalid_request_error", "payment_intent");
    void send("charge.refunded", chargeObject(r.charge, pi));
    return json(res, 200, { id: newId("re"), object: "refund", amount: r.n, payment_intent: pi, charge: r.charge.id, status: "succeeded" });
  }

  function api(method: string, path: string, body: Record<string, unknown>, res: ServerResponse): string | undefined {
    if (method === "POST" && path === "/v1/checkout/sessions") return createSession(body, res);
    if (method === "GET" && path.startsWith("/v1/checkout/sessions/")) {
      const s = sessions.get(decodeURIComponent(path.slice("/v1/checkout/sessions/".length)));
      return s ? json(res, 200, sessionObject(s)) : apiError(res, 404, "No such checkout.session", "invalid_request_error", "id");
    }
    if (method === "POST" && path === "/v1/billing/meter_events") return createMeterEvent(body, res);
    if (method === "POST" && path === "/v1/customers") return createCustomer(body, res);
    if (method === "POST" && path === "/v1/refunds") return createRefund(body, res);
    return apiError(res, 404, `Unrecognized request URL (${method}: ${path}). The meterkit Stripe stand-in implements only what meterkit uses.`);
  }

  // ------------------------------------------------------------------------------------
  // The hosted checkout page.

  function page(res: ServerResponse, status: number, title: string, inner: string) {
    res.writeHead(status, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
    res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><style>
body{font:16px/1.5 system-ui,sans-serif;background:#f6f7f9;color:#1a1f36;margin:0;display:grid;place-items:center;min-height:100vh}
main{background:#fff;border-radius:12px;box-shadow:0 2px 12px #0002;padding:2rem;max-width:26rem;width:calc(100% - 2rem)}
.dev{background:#fff3cd;color:#664d03;border:1px solid #ffe69c;border-radius:8px;padding:.5rem .75rem;font-size:.9rem;margin:0 0 1.5rem}
.amount{font-size:2rem;font-weight:600;margin:.25rem 0 1.5rem}
form{display:inline}button{font:inherit;border-radius:8px;padding:.6rem 1.2rem;border:1px solid #c0c8d2;background:#fff;cursor:pointer;margin-right:.5rem}
button.pay{background:#635bff;border-color:#635bff;color:#fff}button:focus-visible{outline:3px solid #9f9bff;outline-offset:2px}
</style></head><body><main>
<p class="dev" role="note"><strong>Development only.</strong> This is meterkit's local Stripe stand-in, not Stripe: no card is charged.</p>
${inner}</main></body></html>`);
  }

  async function checkoutPage(method: string, path: string, res: ServerResponse): Promise<void> {
    const m = /^\/checkout\/([^/]+)(?:\/(pay|cancel))?$/.exec(path);
    const s = m ? sessions.get(decodeURIComponent(m[1]!)) : undefined;
    if (!m || !s) return page(res, 404, "Not found", "<h1>Checkout session not found</h1>");
    const action = m[2];
    if (method === "GET" && !action) {
      if (s.status !== "open") return page(res, 410, "Checkout closed", `<h1>This checkout is ${escapeHtml(s.status)}.</h1>`);
      const id = encodeURIComponent(s.id);
      return page(
        res,
        200,
        `Pay ${s.description}`,
        `<h1>${escapeHtml(s.description)}</h1><p class="amount">${escapeHtml(formatMoney(s.amount_total, s.currency))}</p>
<form method="post" action="/checkout/${id}/pay"><button class="pay" type="submit">Pay</button></form>
<form method="post" action="/checkout/${id}/cancel"><button type="submit">Cancel</button></form>`,
      );
    }
    if (method === "POST" && action === "cancel") {
      res.writeHead(303, { location: s.cancel_url ?? s.success_url });
      res.end();
      return;
    }
    if (method === "POST" && action === "pay") {
      if (s.status !== "open") return page(res, 410, "Checkout closed", `<h1>This checkout is ${escapeHtml(s.status)}.</h1>`);
      const delivery = await pay(s.id);
      const target = s.success_url.replaceAll("{CHECKOUT_SESSION_ID}", s.id);
      if (delivery.status >= 200 && delivery.status < 300) {
        res.writeHead(303, { location: target });
        res.end();
        return;
      }
      // Real Stripe would retry for days; here the developer should see why the app refused it.
      return page(
        res,
        502,
        "Webhook failed",
        `<h1>Paid, but the app's webhook failed</h1><p>${escapeHtml(webhookUrl ?? "(no webhookUrl)")} answered ${delivery.status || "nothing"}:</p>
<pre style="white-space:pre-wrap">${escapeHtml(delivery.body.slice(0, 2000))}</pre><p><a href="${escapeHtml(target)}">Continue to the app</a></p>`,
      );
    }
    res.writeHead(405, { allow: "GET, POST" });
    res.end();
  }

  // ------------------------------------------------------------------------------------

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      void (async () => {
        const url = new URL(req.url ?? "/", base);
        const method = req.method ?? "GET";
        const path = url.pathname;
        if (!path.startsWith("/v1/")) return checkoutPage(method, path, res);
        const text = Buffer.concat(chunks).toString("utf8");
        const type = String(req.headers["content-type"] ?? "");
        let body: Record<string, unknown> = {};
        try {
          body = type.includes("application/json") && text ? (JSON.parse(text) as Record<string, unknown>) : decodeStripeForm(text);
        } catch {
          body = {};
        }
        requests.push({ method, path, headers: { ...req.headers }, body, at: new Date() });

        // Stripe replays the first answer to a repeated idempotency key.
        const key = req.headers["idempotency-key"];
        const cacheKey = typeof key === "string" && method === "POST" ? `${path}\u0000${key}` : null;

        const failure = failures.find((f) => f.path === path && f.method === method && f.times > 0);
        if (failure) {
          failure.times -= 1;
          if (failure.mode === "error") {
            apiError(res, failure.status, "An injected failure of the Stripe stand-in.", "api_error");
            return;
          }
          if (failure.mode === "accept-then-timeout") {
            const sink = new ServerResponseSink();
            const answer = api(method, path, body, sink as unknown as ServerResponse);
            if (cacheKey && answer !== undefined && sink.statusCode < 500) idempotent.set(cacheKey, { status: sink.statusCode, body: answer });
          }
          hanging.add(res);
          res.on("close", () => hanging.delete(res));
          return;
        }

        const cached = cacheKey ? idempotent.get(cacheKey) : undefined;
        if (cached) {
          res.writeHead(cached.status, { "content-type": "application/json", "idempotent-replayed": "true" });
          res.end(cached.body);
          return;
        }
        const answer = api(method, path, body, res);
        if (cacheKey && answer !== undefined && res.statusCode < 500) idempotent.set(cacheKey, { status: res.statusCode, body: answer });
      })().catch((err: unknown) => {
        if (!res.headersSent) apiError(res, 500, err instanceof Error ? err.message : String(err), "api_error");
      });
    });
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  base = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;

  return {
    url: base,
    port,
    clientOptions: { host, port, protocol: "http" },
    get webhookUrl() {
      return webhookUrl;
    },
    set webhookUrl(value: string | undefined) {
      webhookUrl = value;
    },
    webhookSecret: secret,
    requests,
    sessions,
    meterEvents,
    deliveries,
    fail(f) {
      failures.push({ method: "POST", mode: "error", status: 500, times: 1, ...f });
    },
    clearFailures() {
      failures.length = 0;
      for (const res of hanging) apiError(res, 500, "Released by clearFailures().", "api_error");
      hanging.clear();
    },
    pay,
    settle,
    refund,
    dispute,
    send,
    deliver,
    sign,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Swallows the answer of an `accept-then-timeout` request: the work is done, the reply lost. */
class ServerResponseSink {
  statusCode = 200;
  headersSent = false;
  writeHead(status: number) {
    this.statusCode = status;
    return this;
  }
  end() {
    return this;
  }
}
