import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { createMeter, createMeterHandler, type Meter, type MeterHandler } from "../../src/server/index.js";
import { ROUTES } from "../../src/server/http/routes.js";
import { freshDatabase } from "../helpers/db.js";
import { TEST_PLANS } from "../helpers/meter.js";
import { SECRET } from "./fixtures.js";

// The Idempotency-Key of a /v1 mutation is claimed in the ledger call's own statement: one
// database round trip per mutation, counted here on the meter's pool (an app's own pg.Pool,
// the public way in), and the documented rules of docs/http.md unchanged.
let db: Awaited<ReturnType<typeof freshDatabase>>;
let pool: pg.Pool;
let inspect: pg.Pool;
let meter: Meter;
let handler: MeterHandler;
/** Every statement the meter's pool ran, in order. */
const statements: string[] = [];

beforeAll(async () => {
  db = await freshDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 8 });
  pool.on("connect", (client) => {
    const run = client.query.bind(client) as (...args: unknown[]) => unknown;
    client.query = ((...args: unknown[]) => {
      const q = args[0] as string | { text: string };
      statements.push(typeof q === "string" ? q : q.text);
      return run(...args);
    }) as typeof client.query;
  });
  inspect = new pg.Pool({ connectionString: db.url, max: 2, options: "-c search_path=meterkit" });
  meter = createMeter({ database: pool, plans: TEST_PLANS, meters: { "llm.tokens": { counter: "tokens" } }, sweepInterval: 0 });
  await meter.migrate();
  handler = createMeterHandler(meter, { secretKeys: SECRET, onError: () => {} });
  for (const u of ["ann", "ben", "cat", "dan", "eve", "fay"]) await meter.upsertSubscription({ userId: u, planId: "pro" });
});
afterAll(async () => {
  await meter.close();
  await pool.end();
  await inspect.end();
  await db.drop();
});
beforeEach(() => {
  statements.length = 0;
});

const post = (path: string, body: unknown, key?: string, method = "POST") =>
  handler(
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
