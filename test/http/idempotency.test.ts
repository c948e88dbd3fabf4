import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { createMeter, createMeterHandler, type Meter, type MeterHandler } from "../../src/server/index.js";
import { ROUTES } from "../../src/server/http/routes.js";
import { batchOps, type BatchOp } from "../helpers/batchOps.js";
import { freshDatabase } from "../helpers/db.js";
import { TEST_PLANS } from "../helpers/meter.js";
import { SECRET } from "./fixtures.js";

// The Idempotency-Key of a /v1 mutation is claimed in the ledger call's own statement: one
// database round trip per mutation, counted here on the meter's pool (an app's own pg.Pool,
// the public way in), and the documented rules of docs/http.md unchanged — also on a meter with
// `batch: true`, where keyed requests ride the batches (0041).
let db: Awaited<ReturnType<typeof freshDatabase>>;
let pool: pg.Pool;
let inspect: pg.Pool;
let meter: Meter;
let handler: MeterHandler;
/** The same database and pool, with `batch: true`. */
let batchedMeter: Meter;
let batchedHandler: MeterHandler;
/** Every statement the meter's pool ran, in order. */
const statements: string[] = [];
/** The operations of every op_batch call, in order. */
const batches: BatchOp[][] = [];

beforeAll(async () => {
  db = await freshDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 8 });
  pool.on("connect", (client) => {
    const run = client.query.bind(client) as (...args: unknown[]) => unknown;
    client.query = ((...args: unknown[]) => {
      const q = args[0] as string | { text: string };
      statements.push(typeof q === "string" ? q : q.text);
      const ops = batchOps(args);
      if (ops) batches.push(ops);
      return run(...args);
    }) as typeof client.query;
  });
  inspect = new pg.Pool({ connectionString: db.url, max: 2, options: "-c search_path=meterkit" });
  meter = createMeter({ database: pool, plans: TEST_PLANS, meters: { "llm.tokens": { counter: "tokens" } }, sweepInterval: 0 });
  await meter.migrate();
  handler = createMeterHandler(meter, { secretKeys: SECRET, onError: () => {} });
  batchedMeter = createMeter({ database: pool, plans: TEST_PLANS, meters: { "llm.tokens": { counter: "tokens" } }, sweepInterval: 0, batch: true });
  batchedHandler = createMeterHandler(batchedMeter, { secretKeys: SECRET, onError: () => {} });
  for (const u of ["ann", "ben", "cat", "dan", "eve", "fay"]) await meter.upsertSubscription({ userId: u, planId: "pro" });
});
afterAll(async () => {
  await batchedMeter.close();
  await meter.close();
  await pool.end();
  await inspect.end();
  await db.drop();
});
beforeEach(() => {
  statements.length = 0;
  batches.length = 0;
});

const post = (path: string, body: unknown, key?: string, method = "POST", to = handler) =>
  to(
    new Request("http://meter.test" + path, {
      method,
      headers: { authorization: `Bearer ${SECRET}`, "content-type": "application/json", ...(key ? { "idempotency-key": key } : {}) },
      body: JSON.stringify(body),
    }),
  );

/** Statements of the request itself: the live-balance NOTIFY goes out after commit, batched across requests. */
const roundTrips = () => statements.filter((s) => !s.includes("pg_notify"));

async function count(sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await inspect.query<{ n: string }>(sql, params);
  return Number(rows[0]!.n);
}

/** What a write would change: the entries, and the subscription (which writes no entry). */
async function ledgerState() {
  const { rows } = await inspect.query(
    "SELECT (SELECT count(*) FROM entries) AS entries, (SELECT count(*) FROM idempotency) AS keys, (SELECT row_to_json(s) FROM subscriptions s WHERE user_id = 'fay') AS fay",
  );
  return rows[0];
}

async function reserved(user: string, amount: number, key: string): Promise<string> {
  const res = await post("/v1/reservations", { userId: user, meterKey: "llm.tokens", amount }, key);
  expect(res.status).toBe(200);
  return ((await res.json()) as { reservationId: string }).reservationId;
}

describe("one database round trip per mutation", () => {
  test("reserve, commit, release, event, grant and subscription with an Idempotency-Key each run one statement", async () => {
    const id = await reserved("ann", 100, "rt-reserve");
    expect(roundTrips()).toHaveLength(1);
    for (const [path, body, method] of [
      [`/v1/reservations/${id}/commit`, { actual: 40 }, "POST"],
      [`/v1/reservations/${await reserved("ann", 10, "rt-reserve-2")}/release`, {}, "POST"],
      ["/v1/events", { userId: "ann", meterKey: "llm.tokens", amount: 5 }, "POST"],
      ["/v1/grants", { userId: "ann", counterKey: "tokens", amount: 50 }, "POST"],
      ["/v1/subscriptions/ann", { planId: "pro" }, "PUT"],
    ] as const) {
      statements.length = 0;
      const res = await post(path, body, `rt-${path}`, method);
      expect(res.status, path).toBe(200);
      expect(roundTrips(), path).toHaveLength(1);
      expect(await count("SELECT count(*) AS n FROM http_idempotency WHERE key = $1", [`rt-${path}`]), path).toBe(1);
    }
  });

  test("a repeat of a keyed request is one statement too, and answers the first result without writing", async () => {
    const body = { userId: "ben", meterKey: "llm.tokens", amount: 7 };
    const first = await (await post("/v1/reservations", body, "rt-repeat")).json();
    const before = await count("SELECT count(*) AS n FROM entries");
    statements.length = 0;
    const again = await (await post("/v1/reservations", body, "rt-repeat")).json();
    expect(again).toEqual(first);
    expect(roundTrips()).toHaveLength(1);
    expect(await count("SELECT count(*) AS n FROM entries")).toBe(before);
  });

  test("a key reused with another body is one statement: 409 conflict, nothing written", async () => {
    await reserved("ben", 3, "rt-conflict");
    const before = await count("SELECT (SELECT count(*) FROM entries) + (SELECT count(*) FROM http_idempotency) + (SELECT count(*) FROM idempotency) AS n");
    statements.length = 0;
    const res = await post("/v1/reservations", { userId: "ben", meterKey: "llm.tokens", amount: 4 }, "rt-conflict");
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: unknown }).error).toEqual({
      code: "conflict",
      message: 'Idempotency-Key "rt-conflict" was already used with a different request.',
      idempotencyKey: "rt-conflict",
    });
    expect(roundTrips()).toHaveLength(1);
    expect(await count("SELECT (SELECT count(*) FROM entries) + (SELECT count(*) FROM http_idempotency) + (SELECT count(*) FROM idempotency) AS n")).toBe(before);
  });
});

describe("a request the ledger refuses frees its key, in the same round trip", () => {
  test("a commit of an unknown reservation is 404 and leaves the key free for the corrected request", async () => {
    const res = await post("/v1/reservations/rsv_nope/commit", { actual: 1 }, "rt-free-1");
    expect(res.status).toBe(404);
    expect(roundTrips()).toHaveLength(1); // no separate release of the claim
    expect(await count("SELECT count(*) AS n FROM http_idempotency WHERE key = 'rt-free-1'")).toBe(0);
    const id = await reserved("cat", 20, "rt-free-hold");
    const ok = await post(`/v1/reservations/${id}/commit`, { actual: 5 }, "rt-free-1");
    expect(ok.status).toBe(200);
  });

  test("an event a strict counter refuses (402) leaves the key free", async () => {
    const res = await post("/v1/events", { userId: "cat", meterKey: "images", amount: 11 }, "rt-free-2");
    expect(res.status).toBe(402);
    expect(await count("SELECT count(*) AS n FROM entries WHERE user_id = 'cat' AND meter_key = 'images'")).toBe(0);
    const ok = await post("/v1/events", { userId: "cat", meterKey: "images", amount: 1 }, "rt-free-2");
    expect(ok.status).toBe(200);
    expect(await count("SELECT count(*) AS n FROM entries WHERE user_id = 'cat' AND meter_key = 'images'")).toBe(1);
  });
});

describe("concurrent requests with one key", () => {
  test("the same body sent four times at once holds once and answers alike", async () => {
    const body = { userId: "dan", meterKey: "llm.tokens", amount: 9 };
    const answers = await Promise.all([1, 2, 3, 4].map(() => post("/v1/reservations", body, "rt-race-same")));
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    const bodies = await Promise.all(answers.map((r) => r.json()));
    for (const b of bodies) expect(b).toEqual(bodies[0]);
    expect(await count("SELECT count(*) AS n FROM entries WHERE user_id = 'dan' AND kind = 'reserve'")).toBe(1);
  });

  test("different bodies at once: one is applied, the others are 409 conflict", async () => {
    const answers = await Promise.all(
      [1, 2, 3, 4].map((amount) => post("/v1/reservations", { userId: "eve", meterKey: "llm.tokens", amount }, "rt-race-other")),
    );
    const statuses = answers.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 409, 409, 409]);
    expect(await count("SELECT count(*) AS n FROM entries WHERE user_id = 'eve' AND kind = 'reserve'")).toBe(1);
    expect(await count("SELECT count(*) AS n FROM http_idempotency WHERE key = 'rt-race-other'")).toBe(1);
  });
});

test("every /v1 mutation binds its Idempotency-Key: reused with another body it is 409 and writes nothing", async () => {
  // One valid request per mutating route, and a second one that differs only in its body: a
  // new /v1 route without a row here fails this test until its key is shown to be claimed.
  const hold = async () => reserved("fay", 5, `rt-all-hold-${Math.random()}`);
  const samples: Record<string, () => Promise<Array<{ path: string; body: unknown }>>> = {
    "POST /v1/reservations": async () => [
      { path: "/v1/reservations", body: { userId: "fay", meterKey: "llm.tokens", amount: 1 } },
      { path: "/v1/reservations", body: { userId: "fay", meterKey: "llm.tokens", amount: 2 } },
    ],
    "POST /v1/reservations/:id/commit": async () => {
      const id = await hold();
      return [
        { path: `/v1/reservations/${id}/commit`, body: { actual: 1 } },
        { path: `/v1/reservations/${id}/commit`, body: { actual: 2 } },
      ];
    },
    "POST /v1/reservations/:id/release": async () => [
      { path: `/v1/reservations/${await hold()}/release`, body: {} },
      { path: `/v1/reservations/${await hold()}/release`, body: {} },
    ],
    "POST /v1/events": async () => [
      { path: "/v1/events", body: { userId: "fay", meterKey: "llm.tokens", amount: 1 } },
      { path: "/v1/events", body: { userId: "fay", meterKey: "llm.tokens", amount: 2 } },
    ],
    "POST /v1/grants": async () => [
      { path: "/v1/grants", body: { userId: "fay", counterKey: "tokens", amount: 1 } },
      { path: "/v1/grants", body: { userId: "fay", counterKey: "tokens", amount: 2 } },
    ],
    "PUT /v1/subscriptions/:userId": async () => [
      { path: "/v1/subscriptions/fay", body: { planId: "pro" } },
      { path: "/v1/subscriptions/fay", body: { planId: "free" } },
    ],
  };
  const mutations = ROUTES.filter((r) => r.audience === "server" && r.method !== "GET");
  expect(mutations.length).toBeGreaterThan(0);
  for (const route of mutations) {
    const name = `${route.method} /${route.path.join("/")}`;
    const sample = samples[name];
    expect(sample, `no sample request for ${name}`).toBeDefined();
    const [first, other] = await sample!();
    const key = `rt-all-${name}`;
    expect((await post(first!.path, first!.body, key, route.method)).status, name).toBe(200);
    expect(await count("SELECT count(*) AS n FROM http_idempotency WHERE key = $1", [key]), name).toBe(1);
    const before = await ledgerState();
    const res = await post(other!.path, other!.body, key, route.method);
    expect(res.status, name).toBe(409);
    expect(await ledgerState(), name).toEqual(before);
  }
});

describe("keyed requests on a meter with batch: true ride its batches (0041)", () => {
  const USERS = Array.from({ length: 16 }, (_, i) => `bk-${i}`);
  beforeAll(async () => {
    for (const u of USERS) await meter.upsertSubscription({ userId: u, planId: "pro" });
  });
  /** A request to the batched meter's handler: its status and JSON body. */
  const send = async (path: string, body: unknown, key?: string) => {
    const res = await post(path, body, key, "POST", batchedHandler);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  /** The operations that rode a batch with their request's key. */
  const claimedInBatches = () => batches.flat().filter((op) => op.claim !== undefined).length;

  test("concurrent keyed reservations ride batches, each with its key claimed, one hold and one claim each", async () => {
    const answers = await Promise.all(USERS.map((u, i) => send("/v1/reservations", { userId: u, meterKey: "llm.tokens", amount: 100 }, `bk-r-${i}`)));
    for (const a of answers) expect(a).toMatchObject({ status: 200, body: { allowed: true } });
    // 16 requests, far fewer statements: all but the first (an idle meter sends it at once) rode batches.
    expect(claimedInBatches()).toBeGreaterThanOrEqual(8);
    expect(roundTrips().filter((t) => /\.op_(batch|reserve|resolve)\(/.test(t)).length).toBeLessThan(16);
    expect(await count("SELECT count(*) AS n FROM http_idempotency WHERE key LIKE 'bk-r-%'")).toBe(16);
    expect(await count("SELECT count(*) AS n FROM holds WHERE user_id LIKE 'bk-%' AND status = 'open'")).toBe(16);
    // Committed the same way (keyed commits), every hold resolves once.
    const commits = await Promise.all(
      answers.map((a, i) => send(`/v1/reservations/${encodeURIComponent(String(a.body.reservationId))}/commit`, { actual: 40 }, `bk-c-${i}`)),
    );
    for (const c of commits) expect(c).toMatchObject({ status: 200, body: { status: "committed", committed: 40 } });
    expect(claimedInBatches()).toBeGreaterThanOrEqual(16);
    for (const u of USERS) expect(await batchedMeter.audit(u)).toEqual([]);
  });

  test("inside one batch: a repeat answers the first result, another body is a 409 that wrote nothing, a failure frees its key", async () => {
    const before = await count("SELECT count(*) AS n FROM entries");
    const claimsBefore = await count("SELECT count(*) AS n FROM http_idempotency");
    const body = (u: string, amount: number) => ({ userId: u, meterKey: "llm.tokens", amount });
    // Gathered behind a first request that goes out alone, so the rest share a batch.
    const [, same1, same2, diff1, diff2, bad, ...others] = await Promise.all([
      send("/v1/reservations", body(USERS[0]!, 5), "bk2-lead"),
      send("/v1/reservations", body(USERS[1]!, 7), "bk2-same"),
      send("/v1/reservations", body(USERS[1]!, 7), "bk2-same"),
      send("/v1/reservations", body(USERS[2]!, 9), "bk2-diff"),
      send("/v1/reservations", body(USERS[2]!, 11), "bk2-diff"),
      send("/v1/reservations/rsv_000000000000000000000000000a_bk-3/commit", { actual: 1 }, "bk2-bad"),
      ...USERS.slice(4).map((u, i) => send("/v1/reservations", body(u, 3), `bk2-other-${i}`)),
    ]);
    // Each of the requests under test rode a batch with its key (the lead went out alone).
    const keysInBatches = batches.flat().flatMap((op) => (op.claim ? [op.claim[0]] : []));
    expect(keysInBatches.filter((k) => k === "bk2-same")).toHaveLength(2);
    expect(keysInBatches.filter((k) => k === "bk2-diff")).toHaveLength(2);
    expect(keysInBatches).toContain("bk2-bad");

    // The repeat: the same reservation, one hold.
    expect(same1).toMatchObject({ status: 200, body: { allowed: true } });
    expect(same2).toEqual(same1);
    expect(await count("SELECT count(*) AS n FROM holds WHERE user_id = $1 AND amount = 7", [USERS[1]])).toBe(1);
    // Another body: exactly one of the two applied, the other is a conflict.
    expect([diff1!.status, diff2!.status].sort()).toEqual([200, 409]);
    expect([diff1, diff2].find((d) => d!.status === 409)!.body).toMatchObject({ error: { code: "conflict" } });
    expect(await count("SELECT count(*) AS n FROM holds WHERE user_id = $1 AND amount IN (9, 11)", [USERS[2]])).toBe(1);
    // The failure (no such reservation) answered alone and kept nothing.
    expect(bad).toMatchObject({ status: 404, body: { error: { code: "not_found" } } });
    for (const o of others) expect(o).toMatchObject({ status: 200, body: { allowed: true } });
    // Entries: a reserve each for the lead, the repeat pair (once), the diff pair (once) and the others.
    expect(await count("SELECT count(*) AS n FROM entries")).toBe(before + 3 + others.length);
    expect(await count("SELECT count(*) AS n FROM http_idempotency")).toBe(claimsBefore + 3 + others.length);
    expect(await count("SELECT count(*) AS n FROM http_idempotency WHERE key = 'bk2-bad'")).toBe(0);

    // The freed key serves the corrected request.
    const lead = await batchedMeter.reserve(USERS[3]!, "llm.tokens", 2);
    const fixed = await send(`/v1/reservations/${encodeURIComponent(lead.allowed ? lead.reservationId : "")}/commit`, { actual: 1 }, "bk2-bad");
    expect(fixed).toMatchObject({ status: 200, body: { status: "committed", committed: 1 } });
    for (const u of USERS) expect(await batchedMeter.audit(u)).toEqual([]);
  });
});
