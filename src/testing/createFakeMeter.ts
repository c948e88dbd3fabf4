/**
 * A meter server in a fetch function, for stories and tests: canned `Usage`, a fake SSE stream
 * that can be pushed to or left ticking, packs, checkout, and a metered app route that answers
 * 402 when told to. No network, no server.
 */
import type { CounterUsage, Usage } from "../core/types.js";
import type { CreditPack } from "../react/index.js";

export interface FakeMeterOptions {
  /** What `GET /usage` and the stream answer. Default: {@link sampleUsage}(). */
  usage?: Usage;
  /** `GET /usage` never answers (the loading state). */
  pending?: boolean;
  /** `GET /usage` answers this error, and the stream is refused. */
  usageError?: { status: number; code: string; message: string };
  /** Serve `GET /usage/stream`. Default `true`. */
  stream?: boolean;
  /** While streaming, spend `step` every `every` ms with `held` on hold, as a streaming reply does. */
  tick?: { every: number; step: number; held: number };
  /** `GET /packs`. Default: {@link samplePacks}. */
  packs?: CreditPack[];
  /** `POST /checkout` answers after this many ms; `Infinity` never answers. Default 0. */
  checkoutDelay?: number;
  /** `POST /checkout` answers this error. */
  checkoutError?: { status: number; code: string; message: string };
  /** The app's metered route (`POST /api/chat`) answers 402 limit_reached. */
  limitReached?: { counter: string; remaining: number; required: number };
}

export interface FakeMeter {
  fetch: typeof fetch;
  /** Sends a usage event to every open stream (and makes it the current usage). */
  push(usage: Usage): void;
  /** Every request seen, in order. */
  requests: Array<{ method: string; url: string; body: unknown }>;
  /** Open stream connections. */
  readonly openStreams: number;
  /** Ends every open stream, as a dropped connection would. */
  dropStreams(): void;
}

export function counter(overrides: Partial<CounterUsage> = {}): CounterUsage {
  const base: CounterUsage = {
    key: "tokens",
    label: "Tokens",
    unit: "tokens",
    quota: 20_000,
    granted: 0,
    used: 7_660,
    held: 0,
    remaining: 12_340,
    periodStart: "2026-11-01T00:00:00.000Z",
    periodEnd: "2026-12-01T00:00:00.000Z",
  };
  const c = { ...base, ...overrides };
  if (overrides.remaining === undefined) c.remaining = Math.max(0, (c.quota ?? 0) + c.granted - c.used - c.held);
  return c;
}

export function sampleUsage(counters: CounterUsage[] = [counter()], version = 1): Usage {
  return { userId: "u_1", planId: "free", version, updatedAt: "2026-11-27T10:00:00.000Z", counters };
}

export const samplePacks: CreditPack[] = [
  { id: "pack_small", label: "Starter", counter: "tokens", amount: 100_000, price: { amount: 500, currency: "usd" } },
  { id: "pack_large", label: "Pro", counter: "tokens", amount: 1_000_000, price: { amount: 3_900, currency: "usd" } },
];

const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const never = () => new Promise<never>(() => undefined);

export function createFakeMeter(options: FakeMeterOptions = {}): FakeMeter {
  let usage = options.usage ?? sampleUsage();
  const streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const encoder = new TextEncoder();
  const requests: FakeMeter["requests"] = [];
  const send = (c: ReadableStreamDefaultController<Uint8Array>, text: string) => {
    try {
      c.enqueue(encoder.encode(text));
    } catch {
      streams.delete(c);
    }
  };
  const push = (next: Usage) => {
    usage = next;
    for (const c of streams) send(c, `event: usage\ndata: ${JSON.stringify(next)}\n\n`);
  };

  let ticker: ReturnType<typeof setInterval> | undefined;
  const startTicking = () => {
    if (!options.tick || ticker) return;
    const { every, step, held } = options.tick;
    ticker = setInterval(() => {
      if (!streams.size) return (clearInterval(ticker), (ticker = undefined));
      const counters = usage.counters.map((c, i) => {
        if (i > 0) return c;
        // Spend down to a tenth of the total, then start over: the story keeps ticking forever.
        const used = (c.remaining ?? 0) - step < ((c.quota ?? 0) + c.granted) / 10 ? c.used - 40 * step : c.used + step;
        return counter({ ...c, used, held, remaining: undefined });
      });
      push({ ...usage, version: usage.version + 1, counters });
    }, every);
  };

  const fetchImpl: typeof fetch = async (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const method = (init?.method ?? "GET").toUpperCase();
    const body: unknown = typeof init?.body === "string" ? JSON.parse(init.body) : null;
    requests.push({ method, url, body });
    const path = new URL(url, "http://x").pathname;
    const signal = init?.signal;

    if (path.endsWith("/usage/stream")) {
      if (options.stream === false || options.usageError) return json({ error: { code: "not_found", message: "No stream." } }, 404);
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          streams.add(c);
          send(c, `retry: 1000\n\nevent: usage\ndata: ${JSON.stringify(usage)}\n\n`);
          signal?.addEventListener("abort", () => {
            streams.delete(c);
            try {
              c.error(signal.reason);
            } catch {
              // already closed
            }
          });
          startTicking();
        },
        cancel() {
          streams.delete(this as unknown as ReadableStreamDefaultController<Uint8Array>);
        },
      });
      return new Response(stream, { headers: { "content-type": "text/event-stream" } });
    }
    if (path.endsWith("/usage")) {
      if (options.pending) return never();
      if (options.usageError) return json({ error: options.usageError }, options.usageError.status);
      return json(usage);
    }
    if (path.endsWith("/packs")) return json({ packs: options.packs ?? samplePacks });
    if (path.endsWith("/checkout") && method === "POST") {
      if (options.checkoutDelay === Infinity) return never();
      await sleep(options.checkoutDelay ?? 0);
      if (options.checkoutError) return json({ error: options.checkoutError }, options.checkoutError.status);
      return json({ url: `https://checkout.example/session/${String((body as { packId?: string } | null)?.packId)}` });
    }
    if (path === "/api/chat") {
      if (options.limitReached) return json({ error: { code: "limit_reached", message: "Limit reached.", ...options.limitReached } }, 402);
      return json({ reply: "Hello!" });
    }
    return json({ error: { code: "not_found", message: `No route ${method} ${path}.` } }, 404);
  };

  return {
    fetch: fetchImpl,
    push,
    requests,
    get openStreams() {
      return streams.size;
    },
    dropStreams() {
      for (const c of streams) c.close();
      streams.clear();
    },
  };
}
