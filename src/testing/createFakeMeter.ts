/**
 * A meter server in a fetch function, for stories and tests: canned `Usage` (unlimited counters
 * too), a fake SSE stream that can be pushed to or left ticking, packs, checkout, the history
 * routes (`GET /usage/history`, `GET /entries`, paginated), and a metered app route that answers
 * 402 when told to; each route can be made to fail or to never answer. No network, no server.
 */
import type { CreditPack, EntriesPage, HistoryEntry, UsageDay, WireCounterUsage as CounterUsage, WireUsage as Usage } from "../react/index.js";

/** A canned error answer: `{ error: { code, message } }` with this status. */
export interface FakeError {
  status: number;
  code: string;
  message: string;
}

export interface FakeMeterOptions {
  /** What `GET /usage` and the stream answer. Default: {@link sampleUsage}(). */
  usage?: Usage;
  /** `GET /usage` and the stream never answer (the loading state). */
  pending?: boolean;
  /** `GET /usage` answers this error, and the stream is refused. */
  usageError?: FakeError;
  /** Serve `GET /usage/stream`. Default `true`. */
  stream?: boolean;
  /**
   * While streaming, spend `step` every `every` ms with `held` on hold, as a streaming reply
   * does; after `count` ticks (default: never) it stops, holding nothing.
   */
  tick?: { every: number; step: number; held: number; count?: number };
  /** `GET /packs`. Default: {@link samplePacks}. */
  packs?: CreditPack[];
  /** `GET /packs` answers this error (until `recover()`). */
  packsError?: FakeError;
  /** `GET /packs` never answers. */
  packsPending?: boolean;
  /** `GET /usage/history` days, oldest first. Default: {@link sampleHistory}(14). */
  history?: UsageDay[];
  /** `GET /entries`, newest first, served in pages. Default: {@link sampleEntries}(). */
  entries?: HistoryEntry[];
  /** `GET /usage/history` and `GET /entries` answer this error (until `recover()`). */
  historyError?: FakeError;
  /** `GET /usage/history` and `GET /entries` never answer. */
  historyPending?: boolean;
  /** `POST /checkout` answers after this many ms; `Infinity` never answers. Default 0. */
  checkoutDelay?: number;
  /** `POST /checkout` answers this error. */
  checkoutError?: { status: number; code: string; message: string };
  /** The app's metered route (`POST /api/chat`) answers 402 limit_reached. */
  limitReached?: { counter: string; remaining: number; required: number };
}

/** What {@link createFakeMeter} returns. */
export interface FakeMeter {
  /** Pass as `fetch` to `<MeterProvider>` (any `baseUrl`): answers the browser routes in memory. */
  fetch: typeof fetch;
  /** Sends a usage event to every open stream (and makes it the current usage). */
  push(usage: Usage): void;
  /** Every request seen, in order. */
  requests: Array<{ method: string; url: string; body: unknown }>;
  /** Open stream connections. */
  readonly openStreams: number;
  /** Ends every open stream, as a dropped connection would. */
  dropStreams(): void;
  /** Makes the failing routes (`packsError`, `historyError`) answer normally from now on. */
  recover(): void;
}

/**
 * A counter of `Usage` with sample numbers (20,000 tokens a month, 7,660 used); `remaining` is
 * computed unless given. `quota: null` makes it unlimited (`remaining: null`).
 */
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
  if (overrides.remaining === undefined) c.remaining = c.quota === null ? null : Math.max(0, c.quota + c.granted - c.used - c.held);
  return c;
}

/** A user's `Usage` with these counters. */
export function sampleUsage(counters: CounterUsage[] = [counter()], version = 1): Usage {
  return { userId: "u_1", planId: "free", version, updatedAt: "2026-11-27T10:00:00.000Z", counters };
}

/** Two packs for the `tokens` counter: Starter (100,000 for $5) and Pro (1,000,000 for $39). */
export const samplePacks: CreditPack[] = [
  { id: "pack_small", label: "Starter", counter: "tokens", amount: 100_000, price: { amount: 500, currency: "usd" } },
  { id: "pack_large", label: "Pro", counter: "tokens", amount: 1_000_000, price: { amount: 3_900, currency: "usd" } },
];

/** `days` days of usage ending on `today` (`YYYY-MM-DD`), a deterministic wave of tokens. */
export function sampleHistory(days = 14, today = "2026-11-27"): UsageDay[] {
  const end = Date.parse(`${today}T00:00:00Z`);
  return Array.from({ length: days }, (_, i) => {
    const back = days - 1 - i;
    return { date: new Date(end - back * 86_400_000).toISOString().slice(0, 10), counters: { tokens: back % 5 === 3 ? 0 : 400 + ((back * 733) % 1_900) } };
  });
}

/**
 * `count` ledger entries, newest first: replies that reserve and then commit (giving the rest
 * back), and a bought pack at the start.
 */
export function sampleEntries(count = 30): HistoryEntry[] {
  const start = Date.parse("2026-11-27T10:00:00Z");
  return Array.from({ length: count }, (_, i) => {
    const id = count - i;
    const at = new Date(start - i * 97_000).toISOString();
    const base = { id: String(id), counter: "tokens", at, reservationId: `res_${Math.ceil(id / 2)}`, grantId: null, meterKey: "llm.tokens", model: "gpt-4o-mini" };
    if (id === 1) return { ...base, kind: "grant" as const, amount: 100_000, reservationId: null, grantId: "grant_1", meterKey: null, model: null, metadata: { source: "stripe" } };
    if (id % 2 === 0) return { ...base, kind: "commit" as const, amount: 300 + id * 7, metadata: { held: 1_500, refunded: 1_200 - id * 7 } };
    return { ...base, kind: "reserve" as const, amount: 1_500, metadata: null };
  });
}

const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const never = () => new Promise<never>(() => undefined);

/**
 * A meter server in a fetch function, for stories and component tests of `meterkit/react`:
 * `<MeterProvider baseUrl="/api/meter" fetch={fake.fetch}>`. Runs in the browser and in Node.
 */
export function createFakeMeter(options: FakeMeterOptions = {}): FakeMeter {
  let usage = options.usage ?? sampleUsage();
  let failing = true;
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
    let ticks = 0;
    ticker = setInterval(() => {
      if (!streams.size) return (clearInterval(ticker), (ticker = undefined));
      const last = options.tick!.count !== undefined && ++ticks >= options.tick!.count;
      if (last) clearInterval(ticker);
      const counters = usage.counters.map((c, i) => {
        if (i > 0 || c.quota === null || c.remaining === null) return c;
        // Spend down to a tenth of the total, then start over: the story keeps ticking forever.
        const used = c.remaining - step < (c.quota + c.granted) / 10 ? c.used - 40 * step : c.used + step;
        return counter({ ...c, used, held: last ? 0 : held, remaining: undefined });
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
      if (options.pending) return never();
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
    if (path.endsWith("/packs")) {
      if (options.packsPending) return never();
      if (failing && options.packsError) return json({ error: options.packsError }, options.packsError.status);
      return json({ packs: options.packs ?? samplePacks });
    }
    if (path.endsWith("/usage/history") || path.endsWith("/entries")) {
      if (options.historyPending) return never();
      if (failing && options.historyError) return json({ error: options.historyError }, options.historyError.status);
      const query = new URL(url, "http://x").searchParams;
      if (path.endsWith("/usage/history")) {
        const days = Number(query.get("days") ?? 30);
        return json({ days: (options.history ?? sampleHistory(days)).slice(-days) });
      }
      const all = options.entries ?? sampleEntries();
      const limit = Number(query.get("limit") ?? 20);
      const before = query.get("before");
      const older = before ? all.filter((e) => Number(e.id) < Number(before)) : all;
      const page: EntriesPage = { entries: older.slice(0, limit), nextCursor: older.length > limit ? older[limit - 1]!.id : null };
      return json(page);
    }
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
    recover() {
      failing = false;
    },
    dropStreams() {
      for (const c of streams) c.close();
      streams.clear();
    },
  };
}
