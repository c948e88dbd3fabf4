import type { Agent, IncomingMessage } from "node:http";

/** One HTTP exchange as the client needs it: the status and the whole body as text. */
export interface Answer {
  status: number;
  text: string;
}

/** Sends one request; rejects on a network failure or when `timeout` ms pass before the whole answer arrived. */
export type Transport = (method: string, url: string, headers: Record<string, string>, body: string | undefined, timeout: number) => Promise<Answer>;

/** A transport over a `fetch` function (the global one in browsers, Deno, Bun and workers; the caller's own when given). */
export function fetchTransport(fetchImpl: typeof fetch): Transport {
  return async (method, url, headers, body, timeout) => {
    const res = await fetchImpl(url, { method, headers, body, signal: AbortSignal.timeout(timeout) });
    return { status: res.status, text: await res.text() };
  };
}

/**
 * Whether this is Node itself (not Deno, Bun or a worker with Node compatibility, whose
 * `node:http` is built on their own fetch): there `node:http` with a keep-alive `Agent` costs
 * about a third of the CPU of Node's `fetch` per request (undici's Web streams and
 * `AbortSignal.timeout` on every call), measured in docs/benchmarks.md.
 */
export function isNode(): boolean {
  const g = globalThis as { process?: { versions?: { node?: string } }; navigator?: { userAgent?: string } };
  // Node ≥ 21 has a navigator whose userAgent starts with "Node.js/"; other runtimes name themselves.
  return typeof g.process?.versions?.node === "string" && (g.navigator?.userAgent === undefined || g.navigator.userAgent.startsWith("Node.js/"));
}

// A specifier the bundlers do not follow, so a browser build of meterkit/client never sees node:http.
const load = (specifier: string): Promise<unknown> => import(/* @vite-ignore */ /* webpackIgnore: true */ specifier);

/** How long an idle connection is kept for the next call: Node's fetch's figure, under the 5 s of Node's server. */
const IDLE_MS = 4_000;

/**
 * A transport over `node:http` / `node:https` with one keep-alive `Agent` per client: idle
 * sockets are reused, and closed after 4 s (or 1 s before a shorter `Keep-Alive: timeout` the
 * server announces), so a request does not go out on a socket the server is closing.
 */
export function nodeTransport(base: string): Transport {
  const secure = base.startsWith("https:");
  type Loaded = { request: typeof import("node:http").request; agent: Agent };
  // Kept once loaded, so a call does not wait on a promise for modules it already has.
  let loaded: Loaded | undefined;
  let loading: Promise<Loaded> | undefined;
  const modules = () =>
    (loading ??= (load(secure ? "node:https" : "node:http") as Promise<typeof import("node:http")>).then(
      (m) =>
        (loaded = {
          request: m.request,
          // `timeout` applies to idle sockets only (the Agent closes them); an attempt has its own timer below.
          agent: new m.Agent({ keepAlive: true, scheduling: "lifo", timeout: IDLE_MS }),
        }),
    ));
  return async (method, url, headers, body, timeout) => {
    const { request, agent } = loaded ?? (await modules());
    return new Promise<Answer>((resolve, reject) => {
      // The caller's headers are this call's own (and its retries'): completed, not copied.
      if (body !== undefined) headers["content-length"] = String(Buffer.byteLength(body));
      const req = request(url, { method, agent, headers }, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.once("end", () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, text: (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)).toString("utf8") });
        });
        res.once("error", fail);
        // A connection cut mid-answer: not an answer, a network failure (retried with the same key).
        res.once("close", () => res.complete || fail(new Error("meterkit/client: the connection closed mid-answer")));
      });
      function fail(err: Error) {
        clearTimeout(timer);
        reject(err);
      }
      // The whole attempt (connect, send, answer) within `timeout`, as AbortSignal.timeout bounds a fetch.
      const timer = setTimeout(() => req.destroy(new Error(`meterkit/client: no complete answer within ${timeout} ms`)), timeout);
      req.once("error", fail);
      req.end(body);
    });
  };
}
