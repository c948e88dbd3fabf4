import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createMeter, type Meter } from "../../src/server/index.js";
import { freshDatabase } from "../helpers/db.js";
import { checkAgainstReference } from "./harness/checkLedger.js";
import { CHAOS_PLANS, type LogRecord, type OpType } from "./harness/opLog.js";
import { internalsOf } from "../../src/server/internals.js";

// The reference check must be able to fail: a small acknowledged history, then the database
// corrupted the ways a broken ledger would be — each must be reported.
let db: Awaited<ReturnType<typeof freshDatabase>>;
let meter: Meter;
const log: LogRecord[] = [];
let holdId = "";

beforeAll(async () => {
  db = await freshDatabase();
  meter = createMeter({ database: db.url, plans: CHAOS_PLANS, defaultPlan: "chaos", sweepInterval: 0 });
  await meter.migrate();
  const w = "t1";
  const ok = (op: string, type: OpType, fields: Record<string, unknown>, result: Record<string, unknown>) => {
    log.push({ k: "send", op, w, type, attempt: 0, t: Date.now(), ...fields } as LogRecord);
    log.push({ k: "ok", op, w, t: Date.now(), result });
  };
  const r = await meter.reserve("u1", "strict", 300, { idempotencyKey: "t1.1", metadata: { op: "t1.1" } });
  if (!r.allowed) throw new Error("denied");
  holdId = r.reservationId;
  ok("t1.1", "reserve", { user: "u1", counter: "strict", amount: 300 }, r as never);
  ok("t1.2", "commit", { hold: holdId, user: "u1", counter: "strict", actual: 120 }, (await meter.commit(holdId, { actual: 120 })) as never);
  ok("t1.3", "grant", { user: "u1", counter: "strict", amount: 500 }, (await meter.grant("u1", "strict", 500, { idempotencyKey: "t1.3", metadata: { op: "t1.3" } })) as never);
  ok("t1.4", "track", { user: "u1", counter: "strict", amount: 40 }, (await meter.track("u1", "strict", 40, { idempotencyKey: "t1.4", metadata: { op: "t1.4" } })) as never);
});
afterAll(async () => {
  await meter.close();
  await db.drop();
});

const check = async () => checkAgainstReference(internalsOf(meter).pool, "meterkit", log, await meter.audit(), { strict: 2_000 });
/** Applies `corrupt`, checks, and undoes it inside a transaction that is rolled back. */
async function withCorruption(corrupt: string): Promise<string[]> {
  const client = await internalsOf(meter).pool.connect();
  try {
    await client.query("BEGIN");
    await client.query(corrupt);
    const report = await checkAgainstReference(client as never, "meterkit", log, [], { strict: 2_000 });
    return report.violations;
  } finally {
    await client.query("ROLLBACK");
    client.release();
  }
}

describe("the reference check", () => {
  test("passes the true history", async () => {
    expect((await check()).violations).toEqual([]);
  });
  test.each([
    ["a lost commit", `DELETE FROM meterkit.entries WHERE kind = 'commit'`, /commit t1.2/],
    ["a doubled commit", `INSERT INTO meterkit.entries (user_id, counter_key, kind, amount, hold_id) SELECT user_id, counter_key, kind, amount, hold_id FROM meterkit.entries WHERE kind = 'commit'`, /resolution entries/],
    ["a commit of another amount", `UPDATE meterkit.holds SET result = jsonb_set(result, '{committed}', '121') WHERE status = 'committed'`, /commit t1.2/],
    ["a lost grant", `DELETE FROM meterkit.grants`, /grant t1.3/],
    ["a phantom grant", `INSERT INTO meterkit.grants (id, user_id, counter_key, amount, remaining, source) VALUES ('grt_x', 'u1', 'strict', 5, 5, 'manual')`, /no logged operation/],
    ["a doubled track", `INSERT INTO meterkit.entries (user_id, counter_key, kind, amount, metadata) SELECT user_id, counter_key, kind, amount, metadata FROM meterkit.entries WHERE kind = 'track'`, /written 2 times/],
    ["a drifted balance", `UPDATE meterkit.balances SET used = used + 1`, /used of u1\|strict/],
    ["a hold left open", `UPDATE meterkit.holds SET status = 'open'`, /still open|is open/],
    ["usage inflated beyond what was acknowledged", `UPDATE meterkit.balances SET used = used + 100000`, /used of u1\|strict: reference 160/],
  ])("reports %s", async (_name, sql, pattern) => {
    const violations = await withCorruption(sql);
    expect(violations.join("\n")).toMatch(pattern);
  });
});
