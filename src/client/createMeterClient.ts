import { assertId, assertKnownFields } from "../core/amounts.js";
import { MeterError, errorFromBody } from "../core/errors.js";
import type { MeterApi, ReserveOptions } from "../core/types.js";
import { fetchTransport, isNode, nodeTransport } from "./transport.js";

export interface MeterClientOptions {
  /** Where the meterkit handler is mounted, e.g. `"https://billing.internal/api/meter"`. */
  url: string;
  /** One of the handler's `secretKeys`, sent as `Authorization: Bearer …`. Keep it on servers. */
  secretKey: string;
  /**
   * The fetch to use (tests, proxies, instrumentation). Default: in Node, `node:http` /
   * `node:https` with a keep-alive `Agent` of the client's own (a third of the CPU of Node's
   * `fetch` per call); elsewhere (Deno, Bun, workers, browsers) the global `fetch`.
   */
  fetch?: typeof fetch;
  /**
   * Extra attempts after a network failure, a timeout or a 502/503/504, each with the same
   * `Idempotency-Key` (commit and release: the same reservation id), so a mutation that did
   * reach the server is not applied twice. Default 2.
   */
  retries?: number;
  /** Time limit of one attempt, in ms. Default 10 000. */
  timeout?: number;
}

/** The ledger over HTTP: the same methods, arguments, results and error codes as a local `meter`. */
export type MeterClient = MeterApi;

const RETRY_STATUS = new Set([502, 503, 504]);

/**
 * A remote meter for services that do not hold the database. Every mutation carries an
 * `Idempotency-Key` (the call's `idempotencyKey` when given, else a fresh UUID reused by its
 * retries), except commit and release, whose reservation id is their key: the ledger answers
 * their repeat with the first result. Server errors come back as the same `MeterError` /
 * `LimitReachedError` codes.
 */
export function createMeterClient(options: MeterClientOptions): MeterClient {
  if (!options || typeof options.url !== "string" || !/^https?:\/\//.test(options.url)) {
    throw new MeterError("invalid_request", "createMeterClient needs { url } — the http(s) URL the meterkit handler is mounted at.", { field: "url" });
  }
  if (typeof options.secretKey !== "string" || options.secretKey.length === 0) {
    throw new MeterError("invalid_request", "createMeterClient needs { secretKey } — one of the handler's secretKeys.", { field: "secretKey" });
  }
  const base = options.url.replace(/\/+$/, "");
  const send = options.fetch ? fetchTransport(options.fetch) : isNode() ? nodeTransport(base) : fetchTransport(globalThis.fetch.bind(globalThis));
  const retries = options.retries ?? 2;
  const timeout = options.timeout ?? 10_000;
  const newKey = () => globalThis.crypto.randomUUID();

  async function call<T>(method: string, path: string, body?: object, key?: string): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${options.secretKey}`, accept: "application/json" };
    if (body) headers["content-type"] = "application/json";
    if (key) headers["idempotency-key"] = key;
    const payload = body && JSON.stringify(body);
    for (let attempt = 0; ; attempt++) {
      let status: number;
      let data: unknown = null;
      try {
        const res = await send(method, base + path, headers, payload, timeout);
        status = res.status;
        try {
          data = JSON.parse(res.text);
        } catch {
          data = null; // a proxy's HTML error page: judged by its status below
        }
        if (status >= 200 && status < 300 && data !== null) return data as T;
      } catch (err) {
        if (attempt < retries) {
          await backoff(attempt);
          continue;
        }
        throw new MeterError("unavailable", `Cannot reach the meter at ${base}.`, {}, { cause: err });
      }
      if (RETRY_STATUS.has(status) && attempt < retries) {
        await backoff(attempt);
        continue;
      }
      throw errorFromBody(data, status);
    }
  }

  const id = (value: unknown, name: string) => encodeURIComponent(assertId(value, name));
  const keyOf = (value: unknown) => (value === undefined || value === null ? newKey() : assertId(value, "idempotencyKey"));
  const iso = (d: unknown) => (d instanceof Date ? d.toISOString() : d);

  // The same option names the local meter accepts: an unknown one is refused here, since the
  // bodies below pick the known fields and would silently drop a typo.
  const known = (o: unknown, fields: readonly string[]) => assertKnownFields(o, "", fields);

  return {
    // Both forms of the local meter: (userId, meterKey, amount, options?) and the multi-counter
    // (userId, { meterKey: amount }, options?), sent as `amounts`.
    reserve: (async (userId: string, target: string | Record<string, number>, amount?: number | ReserveOptions, options?: ReserveOptions) => {
      const single = typeof target === "string";
      const o = ((single ? options : amount) ?? {}) as ReserveOptions;
      known(o, ["model", "ttl", "idempotencyKey", "metadata"]);
      const what = single ? { meterKey: target, amount } : { amounts: target };
      return call("POST", "/v1/reservations", { userId, ...what, model: o.model, ttl: o.ttl, metadata: o.metadata }, keyOf(o.idempotencyKey));
    }) as MeterApi["reserve"],
    commit: async (reservationId, o = {}) => {
      known(o, ["actual", "usage"]);
      // No Idempotency-Key: the reservation id is the key (a repeat answers the first result,
      // other numbers are a conflict), and a claimed HTTP key would be a second write per call.
      return call("POST", `/v1/reservations/${id(reservationId, "reservationId")}/commit`, { actual: o.actual, usage: o.usage });
    },
    release: async (reservationId) => call("POST", `/v1/reservations/${id(reservationId, "reservationId")}/release`, {}),
    track: async (userId, meterKey, amount, o = {}) => {
      known(o, ["reservationId", "idempotencyKey", "model", "metadata"]);
      return call(
        "POST",
        "/v1/events",
        { userId, meterKey, amount, reservationId: o.reservationId, model: o.model, metadata: o.metadata },
        keyOf(o.idempotencyKey),
      );
    },
    grant: async (userId, counterKey, amount, o = {}) => {
      known(o, ["idempotencyKey", "expiresAt", "source", "metadata"]);
      return call(
        "POST",
        "/v1/grants",
        { userId, counterKey, amount, expiresAt: iso(o.expiresAt), source: o.source, metadata: o.metadata },
        keyOf(o.idempotencyKey),
      );
    },
    usage: async (userId) => call("GET", `/v1/users/${id(userId, "userId")}/usage`),
    upsertSubscription: async (input) => {
      known(input, ["userId", "planId", "customLimits", "startedAt"]);
      return call(
        "PUT",
        `/v1/subscriptions/${id(input?.userId, "userId")}`,
        { planId: input.planId, customLimits: input.customLimits, startedAt: iso(input.startedAt) },
        newKey(),
      );
    },
  };
}

/** 100 ms, 400 ms, 1.6 s … with jitter, so retrying clients do not arrive in step. */
function backoff(attempt: number): Promise<void> {
  const ms = Math.min(5_000, 100 * 4 ** attempt) * (0.5 + Math.random() / 2);
  return new Promise((resolve) => setTimeout(resolve, ms));
}
