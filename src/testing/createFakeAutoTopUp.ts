import type { AutoTopUpState } from "../core/autoTopUp.js";

/** One counter's auto top-up, as `GET /auto-top-up` answers it. */
export type FakeAutoTopUpCounter = AutoTopUpState;

export interface FakeAutoTopUpOptions {
  /** Whether a card is saved. Default true. */
  paymentMethodSaved?: boolean;
  /** The counters' settings. Default: none (never set up). */
  counters?: FakeAutoTopUpCounter[];
  /** The URL `POST /auto-top-up/setup` answers. Default `"https://checkout.example/setup"`. */
  setupUrl?: string;
}

export interface FakeAutoTopUp {
  /** A `fetch` for `MeterProvider` that answers the auto top-up routes (and 404s the rest). */
  fetch: typeof fetch;
  requests: Array<{ method: string; path: string; body: unknown }>;
}

/** A sample counter state (on, tokens, the starter pack) with `overrides`. */
export function autoTopUpCounter(overrides: Partial<FakeAutoTopUpCounter> = {}): FakeAutoTopUpCounter {
  return {
    counter: "tokens",
    enabled: true,
    status: "active",
    packId: "pack_small",
    threshold: 5_000,
    maxPerPeriod: 2_000,
    currency: "usd",
    spentThisPeriod: 0,
    inFlight: false,
    pausedReason: null,
    pausedMessage: null,
    ...overrides,
  };
}

/**
 * The auto top-up routes without a server, for the kit's stories and your own component tests:
 * `GET /auto-top-up`, `PUT /auto-top-up` (applies the change) and `POST /auto-top-up/setup`.
 */
export function createFakeAutoTopUp(options: FakeAutoTopUpOptions = {}): FakeAutoTopUp {
  let saved = options.paymentMethodSaved ?? true;
  const counters = (options.counters ?? []).map((c) => ({ ...c }));
  const requests: FakeAutoTopUp["requests"] = [];
  const reply = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
  const fetchImpl: typeof fetch = async (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const method = (init?.method ?? "GET").toUpperCase();
    const path = new URL(url, "http://x").pathname.replace(/^.*?(\/auto-top-up(?:\/setup)?)$/, "$1");
    const body: unknown = typeof init?.body === "string" ? JSON.parse(init.body) : null;
    requests.push({ method, path, body });
    if (path === "/auto-top-up" && method === "GET") return reply(200, { paymentMethodSaved: saved, counters });
    if (path === "/auto-top-up" && method === "PUT") {
      const b = body as Partial<FakeAutoTopUpCounter> & { counter: string; enabled: boolean };
      let c = counters.find((x) => x.counter === b.counter);
      if (!c) counters.push((c = autoTopUpCounter({ counter: b.counter })));
      Object.assign(c, b, { status: b.enabled ? "active" : "off", pausedReason: null, pausedMessage: null });
      return reply(200, c);
    }
    if (path === "/auto-top-up/setup" && method === "POST") {
      saved = true;
      return reply(200, { url: options.setupUrl ?? "https://checkout.example/setup" });
    }
    return reply(404, { error: { code: "not_found", message: `No route ${method} ${path}.` } });
  };
  return { fetch: fetchImpl, requests };
}
