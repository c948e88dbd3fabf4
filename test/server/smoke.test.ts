import { afterAll, beforeAll, expect, test } from "vitest";
import { testMeter, type TestMeter } from "../helpers/meter.js";

let t: TestMeter;
beforeAll(async () => { t = await testMeter(); });
afterAll(async () => { await t.cleanup(); });

test("smoke", async () => {
  const { meter } = t;
  await meter.upsertSubscription({ userId: "u1", planId: "free" });
  const r = await meter.reserve("u1", "llm.tokens", 300);
  console.log(r);
  if (!r.allowed) throw new Error("denied");
  console.log(await meter.usage("u1"));
  console.log(await meter.commit(r.reservationId, { actual: 100 }));
  console.log(await meter.commit(r.reservationId, { actual: 100 }));
  console.log(await meter.track("u1", "llm.tokens.refund", 30));
  console.log(await meter.grant("u1", "tokens", 500, { idempotencyKey: "g1" }));
  console.log(JSON.stringify(await meter.usage("u1")));
  console.log(await meter.audit());
  expect(true).toBe(true);
});
