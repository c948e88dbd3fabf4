import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createMeterClient } from "../../src/client/index.js";
import type { MeterApi } from "../../src/core/types.js";
import { createMeter, createMeterHandler, type Meter } from "../../src/server/index.js";
import { internalsOf } from "../../src/server/internals.js";
import { freshDatabase } from "../helpers/db.js";
import { SECRET, listen } from "../http/fixtures.js";

// meterkit/client's reserve(userId, { meterKey: amount }) against a real handler and ledger.
let db: Awaited<ReturnType<typeof freshDatabase>>;
let meter: Meter;
let srv: Awaited<ReturnType<typeof listen>>;
let client: MeterApi;

beforeAll(async () => {
  db = await freshDatabase();
  meter = createMeter({
    database: db.url,
    sweepInterval: 0,
    plans: { split: { limits: { tokens_in: { quota: 1_000 }, tokens_out: { quota: 500 } } } },
    meters: { "llm.input": { counter: "tokens_in", counts: "input" }, "llm.output": { counter: "tokens_out", counts: "output" } },
  });
  await meter.migrate();
  srv = await listen(createMeterHandler(meter, { secretKeys: SECRET }));
  client = createMeterClient({ url: srv.url, secretKey: SECRET });
});
afterAll(async () => {
  await srv.close();
  await meter.close();
  await db.drop();
});

const entries = async () => Number((await internalsOf(meter).pool.query<{ n: string }>("SELECT count(*) AS n FROM meterkit.entries")).rows[0]!.n);

describe("meterkit/client, multi-counter reservations", () => {
  test("answers exactly what the local meter answers, for reserve, commit with per-part actuals, and release", async () => {
    const run = async (api: MeterApi, userId: string) => {
      await api.upsertSubscription({ userId, planId: "split" });
      const r = await api.reserve(userId, { "llm.input": 400, "llm.output": 300 }, { model: "gpt-4o", metadata: { chat: "c1" } });
      if (!r.allowed) throw new Error("denied");
      const committed = await api.commit(r.reservationId, { actual: { "llm.input": 350, "llm.output": 320 } });
      const r2 = await api.reserve(userId, { "llm.input": 10, "llm.output": 10 });
      if (!r2.allowed) throw new Error("denied");
      const released = await api.release(r2.reservationId);
      const denied = await api.reserve(userId, { "llm.input": 10, "llm.output": 400 });
      return JSON.parse(JSON.stringify({ r, committed, released, denied, usage: await api.usage(userId) }, (k, v) => (["reservationId", "expiresAt", "updatedAt", "version", "userId", "retryAfter", "periodStart", "periodEnd"].includes(k) ? undefined : v)));
    };
    const local = await run(meter, "local");
    const remote = await run(client, "remote");
    expect(remote).toEqual(local);
    expect(remote.committed.parts).toMatchObject({ tokens_in: { committed: 350, refunded: 50 }, tokens_out: { committed: 320, overage: 20 } });
    expect(remote.denied).toMatchObject({ allowed: false, reason: "limit_reached", counter: "tokens_out", remaining: 180, required: 400 });
  });

  test("an idempotencyKey holds once however often the call is repeated", async () => {
    await client.upsertSubscription({ userId: "idem", planId: "split" });
    const a = await client.reserve("idem", { "llm.input": 5, "llm.output": 5 }, { idempotencyKey: "rsv-idem-1" });
    const before = await entries();
    const b = await client.reserve("idem", { "llm.input": 5, "llm.output": 5 }, { idempotencyKey: "rsv-idem-1" });
    expect(b).toEqual(a);
    expect(await entries()).toBe(before);
  });

  test("bad input is refused with the server's invalid_request and the ledger is unchanged", async () => {
    await client.upsertSubscription({ userId: "bad", planId: "split" });
    const before = await entries();
    await expect(client.reserve("bad", { "llm.input": 1.5 })).rejects.toMatchObject({ code: "invalid_request", details: { field: "amounts.llm.input" } });
    await expect(client.reserve("bad", {})).rejects.toMatchObject({ code: "invalid_request", details: { field: "amounts" } });
    // An unknown option is refused by the client itself, as the local meter refuses it.
    await expect(client.reserve("bad", { "llm.input": 1 }, { modle: "x" } as never)).rejects.toMatchObject({ code: "invalid_request" });
    await expect(meter.reserve("bad", { "llm.input": 1 }, { modle: "x" } as never)).rejects.toMatchObject({ code: "invalid_request" });
    expect(await entries()).toBe(before);
  });
});
