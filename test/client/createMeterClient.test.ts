import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createMeterClient } from "../../src/client/index.js";
import { LimitReachedError, MeterError } from "../../src/core/errors.js";
import type { MeterApi } from "../../src/core/types.js";
import { createMeterHandler } from "../../src/server/index.js";
import { testMeter, type TestMeter } from "../helpers/meter.js";
import { SECRET, listen } from "../http/fixtures.js";
import { internalsOf } from "../../src/server/internals.js";

let t: TestMeter;
let srv: Awaited<ReturnType<typeof listen>>;
let client: MeterApi;

beforeAll(async () => {
  t = await testMeter();
  srv = await listen(createMeterHandler(t.meter, { secretKeys: SECRET, basePath: "/meter" }));
  client = createMeterClient({ url: srv.url + "/meter/", secretKey: SECRET });
});
afterAll(async () => {
  await srv.close();
  await t.cleanup();
});

async function count(sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await internalsOf(t.meter).pool.query<{ n: string }>(sql, params);
  return Number(rows[0]!.n);
}

/** The seed's own calls, written once against the MeterApi interface. */
async function seed(api: MeterApi, userId: string) {
  await api.upsertSubscription({ userId, planId: "pro", startedAt: new Date("2026-01-01T00:00:00.000Z") });
  const r = await api.reserve(userId, "llm.tokens", 2_000, { model: "gpt-4o" });
  if (!r.allowed) throw new Error("denied");
  const committed = await api.commit(r.reservationId, { actual: 1_500 });
  const r2 = await api.reserve(userId, "llm.tokens", 700);
  if (!r2.allowed) throw new Error("denied");
  const released = await api.release(r2.reservationId);
  const refund = await api.track(userId, "llm.tokens.refund", 200, { reservationId: r.reservationId });
  const cost = await api.track(userId, "llm.cost", 10_000, { model: "gpt-4o-mini" });
  const granted = await api.grant(userId, "tokens", 50_000, { idempotencyKey: `cs_${userId}`, source: "purchase", expiresAt: new Date("2999-01-01") });
  const denied = await api.reserve(userId, "images", 11);
  const usage = await api.usage(userId);
  return { committed, released, refund, cost, granted, denied, usage };
}

/** Drops what differs by nature between two users (ids, clocks). */
const comparable = (o: Awaited<ReturnType<typeof seed>>) =>
  JSON.parse(
    JSON.stringify(o, (k, v) => (["reservationId", "grantId", "updatedAt", "version", "userId", "periodStart", "periodEnd"].includes(k) ? undefined : v)),
  );

test("the seed's code runs unchanged against the client and the meter, with the same results", async () => {
  const direct = await seed(t.meter, "seed_direct");
  const remote = await seed(client, "seed_remote");
  expect(comparable(remote)).toEqual(comparable(direct));
  expect(remote.denied).toMatchObject({ allowed: false, reason: "limit_reached", counter: "images" });
});

describe("idempotency and retries", () => {
  test("every mutation but commit and release carries an Idempotency-Key; the caller's idempotencyKey is used when given", async () => {
    const seen: Array<{ method: string; key: string | null }> = [];
    const spy = createMeterClient({
      url: srv.url + "/meter",
      secretKey: SECRET,
      fetch: async (input, init) => {
        seen.push({ method: init?.method ?? "GET", key: new Headers(init?.headers).get("idempotency-key") });
        return fetch(input, init);
      },
    });
    await spy.upsertSubscription({ userId: "idem_u", planId: "free" });
    const r = await spy.reserve("idem_u", "llm.tokens", 10, { idempotencyKey: "my-key-1" });
    if (!r.allowed) throw new Error("denied");
    await spy.commit(r.reservationId);
    await spy.track("idem_u", "llm.tokens", 1);
    await spy.grant("idem_u", "tokens", 1);
    const r2 = await spy.reserve("idem_u", "llm.tokens", 1);
    if (r2.allowed) await spy.release(r2.reservationId);
    await spy.usage("idem_u");
    const mutations = seen.filter((s) => s.method !== "GET");
    expect(mutations).toHaveLength(7);
    // upsertSubscription, reserve, track, grant, reserve: a key each, all different.
    const keyed = [mutations[0]!, mutations[1]!, mutations[3]!, mutations[4]!, mutations[5]!];
    for (const m of keyed) expect(m.key).toMatch(/.+/);
    expect(new Set(keyed.map((m) => m.key)).size).toBe(5);
    expect(mutations[1]!.key).toBe("my-key-1");
    // Commit and release: the reservation id is their key (the ledger answers a repeat with the
    // first result), so they claim no HTTP key, which would be a second write per call.
    expect(mutations[2]!.key).toBeNull();
    expect(mutations[6]!.key).toBeNull();
    // The key maps onto the ledger's: a direct call with it gets the same hold back.
    const direct = await t.meter.reserve("idem_u", "llm.tokens", 10, { idempotencyKey: "my-key-1" });
    expect(direct).toEqual(r);
  });

  test("a response lost on the way back is retried (with its key, or on its reservation id) and applied once", async () => {
    await t.meter.upsertSubscription({ userId: "lossy", planId: "pro" });
    let calls = 0;
    const lossy = createMeterClient({
      url: srv.url + "/meter",
      secretKey: SECRET,
      fetch: async (input, init) => {
        calls++;
        const res = await fetch(input, init); // the server did the work…
        if (calls % 2 === 1) {
          await res.arrayBuffer();
          throw new TypeError("fetch failed: socket hang up"); // …but the answer never arrived
        }
        return res;
      },
    });
    const r = await lossy.reserve("lossy", "llm.tokens", 1_000);
    if (!r.allowed) throw new Error("denied");
    const c = await lossy.commit(r.reservationId, { actual: 400 });
    expect(c.committed).toBe(400);
    // The retried commit (no HTTP key: the reservation is its key) answers the first result.
    expect(c).toEqual(await t.meter.commit(r.reservationId, { actual: 400 }));
    const r2 = await lossy.reserve("lossy", "llm.tokens", 50);
    if (!r2.allowed) throw new Error("denied");
    const rel = await lossy.release(r2.reservationId);
    expect(rel).toEqual(await t.meter.release(r2.reservationId));
    const e = await lossy.track("lossy", "llm.tokens", 25);
    expect(e.amount).toBe(25);
    expect(calls).toBe(10);
    expect(await count(`SELECT count(*) AS n FROM meterkit.holds WHERE user_id = 'lossy'`)).toBe(2);
    expect(await count(`SELECT count(*) AS n FROM meterkit.entries WHERE user_id = 'lossy' AND kind = 'track'`)).toBe(1);
    expect((await t.meter.usage("lossy")).counters.find((x) => x.key === "tokens")!.used).toBe(425);
  });

  test("a 503 is retried; a request that never gets through ends as unavailable", async () => {
    let n = 0;
    const flaky = createMeterClient({
      url: srv.url + "/meter",
      secretKey: SECRET,
      fetch: async (input, init) =>
        ++n === 1
          ? new Response(JSON.stringify({ error: { code: "unavailable", message: "db restarting" } }), { status: 503 })
          : fetch(input, init),
    });
    await flaky.upsertSubscription({ userId: "flaky", planId: "free" });
    expect(n).toBe(2);
    const down = createMeterClient({ url: "http://127.0.0.1:1/meter", secretKey: SECRET, retries: 1 });
    const err = await down.usage("flaky").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MeterError);
    expect((err as MeterError).code).toBe("unavailable");
  });
});

describe("server errors become the same MeterError codes", () => {
  const codeOf = async (p: Promise<unknown>) => {
    const err = await p.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MeterError);
    return (err as MeterError).code;
  };

  test("invalid_request, not_found, conflict: the same over HTTP as direct", async () => {
    await t.meter.upsertSubscription({ userId: "errs", planId: "pro" });
    for (const api of [t.meter, client]) {
      expect(await codeOf(api.reserve("errs", "llm.tokens", -1))).toBe("invalid_request");
      expect(await codeOf(api.reserve("errs", "llm.tokens", 1.5))).toBe("invalid_request");
      expect(await codeOf(api.reserve("errs", "no.such.meter", 1))).toBe("not_found");
      expect(await codeOf(api.usage("nobody_here"))).toBe("not_found");
      expect(await codeOf(api.commit(""))).toBe("invalid_request");
      expect(await codeOf(api.commit("rsv_missing"))).toBe("not_found");
      const r = await api.reserve("errs", "llm.tokens", 5);
      if (!r.allowed) throw new Error("denied");
      await api.release(r.reservationId);
      expect(await codeOf(api.commit(r.reservationId))).toBe("conflict");
    }
  });

  test("a strict counter's overrun is a LimitReachedError with counter, remaining and required", async () => {
    await t.meter.upsertSubscription({ userId: "strict", planId: "pro" });
    const err = await client.track("strict", "images", 11).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LimitReachedError);
    expect(err).toMatchObject({ code: "limit_reached", status: 402, counter: "images", remaining: 10, required: 11 });
  });

  test("a wrong secret key is unauthenticated", async () => {
    const wrong = createMeterClient({ url: srv.url + "/meter", secretKey: "sk_wrong_wrong_wrong_wrong_wrong" });
    expect(await codeOf(wrong.usage("errs"))).toBe("unauthenticated");
  });
});

describe("connections", () => {
  test("calls reuse keep-alive connections: 80 requests from 4 concurrent callers open at most 8", async () => {
    // A server of its own (Node's default keepAliveTimeout, 5 s), so that no earlier socket counts.
    const own = await listen(createMeterHandler(t.meter, { secretKeys: SECRET }));
    let opened = 0;
    own.server.on("connection", () => opened++);
    try {
      const api = createMeterClient({ url: own.url, secretKey: SECRET });
      await t.meter.upsertSubscription({ userId: "keepalive", planId: "pro" });
      await Promise.all(
        [0, 1, 2, 3].map(async () => {
          for (let i = 0; i < 10; i++) {
            const r = await api.reserve("keepalive", "llm.tokens", 1);
            if (!r.allowed) throw new Error("denied");
            await api.commit(r.reservationId, { actual: 1 });
          }
        }),
      );
      // Node's fetch (undici) pools connections per origin; a caller whose next request leaves
      // before the last answer's socket is back in the pool gets a second one: at most two each.
      expect(opened).toBeGreaterThan(0);
      expect(opened).toBeLessThanOrEqual(8);
    } finally {
      await own.close();
    }
  });
});
