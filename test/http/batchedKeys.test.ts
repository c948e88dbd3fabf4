import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { createMeter, createMeterHandler, type Meter, type MeterHandler } from "../../src/server/index.js";
import { freshDatabase } from "../helpers/db.js";
import { TEST_PLANS } from "../helpers/meter.js";
import { SECRET } from "./fixtures.js";

// A meter with `batch: true` behind the HTTP handler: keyed /v1 mutations (meterkit/client sends
// an Idempotency-Key on every reservation) ride the batches like the meter's own calls, and the
// rules of docs/http.md hold inside a batch — a repeat answers the first result, a key used with
// another body is a 409 that wrote nothing, a request that fails frees its key.
let db: Awaited<ReturnType<typeof freshDatabase>>;
let pool: pg.Pool;
let inspect: pg.Pool;
let meter: Meter;
let handler: MeterHandler;
/** The ledger statements the meter's pool ran: each batch's operations, or a lone call's text. */
const sent: { batch: { fn: string; claim?: unknown }[] | null; text: string }[] = [];
const USERS = Array.from({ length: 16 }, (_, i) => `bk-${i}`);

beforeAll(async () => {
  db = await freshDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 24 });
  pool.on("connect", (client) => {
    const run = client.query.bind(client) as (...args: unknown[]) => unknown;
    client.query = ((...args: unknown[]) => {
      const q = args[0] as string | { text: string; values?: unknown[] };
      const text = typeof q === "string" ? q : q.text;
      if (text.includes(".op_batch(")) {
        const values = typeof q === "string" ? (args[1] as unknown[]) : q.values!;
        sent.push({ batch: JSON.parse(String(values[0])) as { fn: string; claim?: unknown }[], text });
      } else if (/\.op_(reserve|resolve|track)/.test(text)) sent.push({ batch: null, text });
      return run(...args);
    }) as typeof client.query;
  });
  inspect = new pg.Pool({ connectionString: db.url, max: 2, options: "-c search_path=meterkit" });
  meter = createMeter({ database: pool, plans: TEST_PLANS, meters: { "llm.tokens": { counter: "tokens" } }, sweepInterval: 0, batch: true });
  await meter.migrate();
  handler = createMeterHandler(meter, { secretKeys: SECRET, onError: () => {} });
  for (const u of USERS) await meter.upsertSubscription({ userId: u, planId: "pro" });
});
afterAll(async () => {
  await meter.close();
  await pool.end();
  await inspect.end();
  await db.drop();
});
beforeEach(() => {
  sent.length = 0;
});

const post = async (path: string, body: unknown, key?: string) => {
  const res = await handler(
    new Request("http://meter.test" + path, {
      method: "POST",
      headers: { authorization: `Bearer ${SECRET}`, "content-type": "application/json", ...(key ? { "idempotency-key": key } : {}) },
      body: JSON.stringify(body),
    }),
  );
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

async function count(sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await inspect.query<Record<string, string>>(sql, params);
  return Number(Object.values(rows[0]!)[0]);
}

/** The operations that rode a batch with their request's key. */
const claimedInBatches = () => sent.flatMap((s) => s.batch ?? []).filter((op) => op.claim !== undefined).length;

describe("keyed /v1 mutations on a batched meter", () => {
  test("concurrent keyed reservations ride batches, each with its key claimed, one hold and one claim each", async () => {
    const answers = await Promise.all(USERS.map((u, i) => post("/v1/reservations", { userId: u, meterKey: "llm.tokens", amount: 100 }, `bk-r-${i}`)));
    for (const a of answers) expect(a).toMatchObject({ status: 200, body: { allowed: true } });
    // 16 requests, far fewer statements: all but the first (an idle meter sends it at once) rode batches.
    expect(claimedInBatches()).toBeGreaterThanOrEqual(8);
    expect(sent.length).toBeLessThan(16);
    expect(await count("SELECT count(*) FROM http_idempotency WHERE key LIKE 'bk-r-%'")).toBe(16);
    expect(await count("SELECT count(*) FROM holds WHERE user_id LIKE 'bk-%' AND status = 'open'")).toBe(16);
    // Committed the same way (keyed commits), every hold resolves once.
    const commits = await Promise.all(
      answers.map((a, i) => post(`/v1/reservations/${encodeURIComponent(String(a.body.reservationId))}/commit`, { actual: 40 }, `bk-c-${i}`)),
    );
    for (const c of commits) expect(c).toMatchObject({ status: 200, body: { status: "committed", committed: 40 } });
    expect(claimedInBatches()).toBeGreaterThanOrEqual(16);
    for (const u of USERS) expect(await meter.audit(u)).toEqual([]);
  });

  test("inside one batch: a repeat answers the first result, another body is a 409 that wrote nothing, a failure frees its key", async () => {
    const before = await count("SELECT count(*) FROM entries");
    const claimsBefore = await count("SELECT count(*) FROM http_idempotency");
    const body = (u: string, amount: number) => ({ userId: u, meterKey: "llm.tokens", amount });
    // Gathered behind a first request that goes out alone, so the rest share a batch.
    const [, same1, same2, diff1, diff2, bad, ...others] = await Promise.all([
      post("/v1/reservations", body(USERS[0]!, 5), "bk2-lead"),
      post("/v1/reservations", body(USERS[1]!, 7), "bk2-same"),
      post("/v1/reservations", body(USERS[1]!, 7), "bk2-same"),
      post("/v1/reservations", body(USERS[2]!, 9), "bk2-diff"),
      post("/v1/reservations", body(USERS[2]!, 11), "bk2-diff"),
      post("/v1/reservations/rsv_000000000000000000000000000a_bk-3/commit", { actual: 1 }, "bk2-bad"),
      ...USERS.slice(4).map((u, i) => post("/v1/reservations", body(u, 3), `bk2-other-${i}`)),
    ]);
    // Each of the requests under test rode a batch with its key (the lead went out alone).
    const keysInBatches = sent.flatMap((s) => s.batch ?? []).flatMap((op) => (op.claim ? [(op.claim as string[])[0]] : []));
    expect(keysInBatches.filter((k) => k === "bk2-same")).toHaveLength(2);
    expect(keysInBatches.filter((k) => k === "bk2-diff")).toHaveLength(2);
    expect(keysInBatches).toContain("bk2-bad");

    // The repeat: the same reservation, one hold.
    expect(same1).toMatchObject({ status: 200, body: { allowed: true } });
    expect(same2).toEqual(same1);
    expect(await count("SELECT count(*) FROM holds WHERE user_id = $1 AND amount = 7", [USERS[1]])).toBe(1);
    // Another body: exactly one of the two applied, the other is a conflict.
    expect([diff1!.status, diff2!.status].sort()).toEqual([200, 409]);
    expect([diff1, diff2].find((d) => d!.status === 409)!.body).toMatchObject({ error: { code: "conflict" } });
    expect(await count("SELECT count(*) FROM holds WHERE user_id = $1 AND amount IN (9, 11)", [USERS[2]])).toBe(1);
    // The failure (no such reservation) answered alone and kept nothing.
    expect(bad).toMatchObject({ status: 404, body: { error: { code: "not_found" } } });
    for (const o of others) expect(o).toMatchObject({ status: 200, body: { allowed: true } });
    // Entries: a reserve each for the lead, the repeat pair (once), the diff pair (once) and the others.
    expect(await count("SELECT count(*) FROM entries")).toBe(before + 3 + others.length);
    expect(await count("SELECT count(*) FROM http_idempotency")).toBe(claimsBefore + 3 + others.length);
    expect(await count("SELECT count(*) FROM http_idempotency WHERE key = 'bk2-bad'")).toBe(0);

    // The freed key serves the corrected request.
    const lead = await meter.reserve(USERS[3]!, "llm.tokens", 2);
    const fixed = await post(`/v1/reservations/${encodeURIComponent(lead.allowed ? lead.reservationId : "")}/commit`, { actual: 1 }, "bk2-bad");
    expect(fixed).toMatchObject({ status: 200, body: { status: "committed", committed: 1 } });
    for (const u of USERS) expect(await meter.audit(u)).toEqual([]);
  });
});
