import { createHmac, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type {
  StripeStandInOptions,
  RecordedRequest,
  StandInCard,
  StandInPaymentIntent,
  StandInSession,
  StandInMeterEvent,
  StandInDelivery,
  StandInEvent,
  StripeStandIn,
} from "./types.js";
import { decodeStripeForm } from "./stripeForm.js";
import { checkoutPage } from "./checkoutPage.js";
import { createFailureInjector, ServerResponseSink } from "./failures.js";

const API_VERSION = "2026-10-28.endive";

function newId(prefix: string): string {
  return `${prefix}_test_${randomBytes(12).toString("base64url")}`;
}

/**
 * Starts the stand-in: `POST /v1/customers`, `POST /v1/checkout/sessions` (payment and setup mode), `POST /v1/payment_intents` (off-session, confirmed), `GET /v1/checkout/sessions/:id`,
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
  const failures = createFailureInjector();
  const paymentIntents = new Map<string, StandInPaymentIntent>();
  const cards = new Map<string, StandInCard>();
  let nextCard: StandInCard = "succeed";
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
    const { description: _description, intentData: _intentData, ...rest } = s;
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
    if (s.mode === "setup") {
      // The card is saved (and authenticated, on-session): setup_intent.succeeded, then the session.
      const pm = newCard();
      s.setup_intent = newId("seti");
      s.payment_status = "no_payment_required";
      const si = { id: s.setup_intent, object: "setup_intent", status: "succeeded", usage: "off_session", customer: s.customer, payment_method: pm, metadata: s.intentData.metadata ?? {}, livemode: false };
      const first = await send("setup_intent.succeeded", si);
      if (first.status !== 0 && (first.status < 200 || first.status >= 300)) return first;
      return send("checkout.session.completed", sessionObject(s));
    }
    s.payment_intent = newId("pi");
    charges.set(s.payment_intent, { id: newId("ch"), amount: s.amount_total, currency: s.currency, refunded: 0, sessionId: s.id });
    s.payment_status = o.async ? "unpaid" : s.amount_total === 0 ? "no_payment_required" : "paid";
    if (s.intentData.setup_future_usage === "off_session" && !o.async) {
      // A pack bought with "save my card": the PaymentIntent carries the method for later.
      const pi: StandInPaymentIntent = {
        id: s.payment_intent, object: "payment_intent", amount: s.amount_total, amount_received: s.amount_total, currency: s.currency,
        customer: s.customer, payment_method: newCard(), setup_future_usage: "off_session", off_session: false, status: "succeeded",
        metadata: s.intentData.metadata ?? {}, last_payment_error: null, livemode: false,
      };
      paymentIntents.set(pi.id, pi);
      const first = await send("payment_intent.succeeded", { ...pi });
      if (first.status !== 0 && (first.status < 200 || first.status >= 300)) return first;
    }
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
    if (items.length === 0 && body.mode !== "setup") return apiError(res, 400, "Missing required param: line_items.", "invalid_request_error", "line_items");
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
      setup_intent: null,
      description,
      intentData: ((body.mode === "setup" ? body.setup_intent_data : body.payment_intent_data) as StandInSession["intentData"]) ?? {},
    };
    if (body.mode === "setup" && typeof body.currency === "string") s.currency = body.currency;
    sessions.set(id, s);
    return json(res, 200, sessionObject(s));
  }

  function newCard(): string {
    const pm = newId("pm");
    cards.set(pm, nextCard);
    return pm;
  }

  /**
   * `POST /v1/payment_intents`. With `confirm` the saved card decides: it succeeds (and
   * `payment_intent.succeeded` follows), is declined (402 `card_declined`), or needs 3-D
   * Secure, which an off-session payment cannot do (402 `authentication_required`); both
   * failures send `payment_intent.payment_failed`.
   */
  function createPaymentIntent(body: Record<string, unknown>, res: ServerResponse): string {
    const amount = Number(body.amount);
    if (!Number.isSafeInteger(amount) || amount < 0) return apiError(res, 400, "Missing required param: amount.", "invalid_request_error", "amount");
    if (typeof body.currency !== "string") return apiError(res, 400, "Missing required param: currency.", "invalid_request_error", "currency");
    const pm = typeof body.payment_method === "string" ? body.payment_method : null;
    const offSession = body.off_session === "true" || body.off_session === true;
    const pi: StandInPaymentIntent = {
      id: newId("pi"), object: "payment_intent", amount, amount_received: 0, currency: body.currency,
      customer: typeof body.customer === "string" ? body.customer : null, payment_method: pm,
      setup_future_usage: typeof body.setup_future_usage === "string" ? body.setup_future_usage : null, off_session: offSession,
      status: "requires_confirmation", metadata: (body.metadata as Record<string, string> | undefined) ?? {}, last_payment_error: null, livemode: false,
    };
    paymentIntents.set(pi.id, pi);
    if (body.confirm !== "true" && body.confirm !== true) return json(res, 200, pi);
    if (!pm) return apiError(res, 400, "You must provide a payment_method to confirm.", "invalid_request_error", "payment_method");
    const card = cards.get(pm);
    if (!card) return apiError(res, 400, `No such PaymentMethod: '${pm}'`, "invalid_request_error", "payment_method");
    if (card === "succeed") {
      pi.status = "succeeded";
      pi.amount_received = amount;
      charges.set(pi.id, { id: newId("ch"), amount, currency: pi.currency, refunded: 0, sessionId: "" });
      void send("payment_intent.succeeded", { ...pi });
      return json(res, 200, pi);
    }
    const code = card === "requires_action" && offSession ? "authentication_required" : "card_declined";
    const message = code === "authentication_required" ? "This payment requires authentication (3-D Secure)." : "Your card was declined.";
    if (card === "requires_action" && !offSession) {
      pi.status = "requires_action";
      return json(res, 200, pi);
    }
    pi.status = "requires_payment_method";
    pi.last_payment_error = { type: "card_error", code, message, ...(code === "card_declined" ? { decline_code: "generic_decline" } : {}) };
    void send("payment_intent.payment_failed", { ...pi });
    return json(res, 402, { error: { type: "card_error", code, message, ...(code === "card_declined" ? { decline_code: "generic_decline" } : {}), payment_intent: pi } });
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
    if (method === "POST" && path === "/v1/payment_intents") return createPaymentIntent(body, res);
    if (method === "GET" && path.startsWith("/v1/payment_intents/")) {
      const pi = paymentIntents.get(decodeURIComponent(path.slice("/v1/payment_intents/".length)));
      return pi ? json(res, 200, pi) : apiError(res, 404, "No such payment_intent", "invalid_request_error", "id");
    }
    return apiError(res, 404, `Unrecognized request URL (${method}: ${path}). The meterkit Stripe stand-in implements only what meterkit uses.`);
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
        if (!path.startsWith("/v1/")) return checkoutPage(method, path, res, { sessions, pay, webhookUrl: () => webhookUrl });
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

        const failure = failures.take(method, path);
        if (failure) {
          if (failure.mode === "error") {
            apiError(res, failure.status, "An injected failure of the Stripe stand-in.", "api_error");
            return;
          }
          if (failure.mode === "accept-then-timeout") {
            const sink = new ServerResponseSink();
            const answer = api(method, path, body, sink as unknown as ServerResponse);
            if (cacheKey && answer !== undefined && sink.statusCode < 500) idempotent.set(cacheKey, { status: sink.statusCode, body: answer });
          }
          failures.hang(res);
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
    paymentIntents,
    fail(f) {
      failures.add(f);
    },
    clearFailures() {
      failures.clear((res) => apiError(res, 500, "Released by clearFailures().", "api_error"));
    },
    get nextCard() {
      return nextCard;
    },
    set nextCard(value: StandInCard) {
      nextCard = value;
    },
    setCard(paymentMethod, behaviour) {
      cards.set(paymentMethod, behaviour);
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
