import { afterAll, beforeAll, expect, test } from "vitest";
import { createMeterClient } from "../../src/client/index.js";
import type { MeterError } from "../../src/core/errors.js";
import type { MeterApi } from "../../src/core/types.js";
import { createMeterHandler } from "../../src/server/index.js";
import { testMeter, type TestMeter } from "../helpers/meter.js";
import { SECRET, listen } from "../http/fixtures.js";

// The remote client refuses what the local meter refuses: an unknown option is a typo, and
// dropping it on the client side would hide it (`{ ttll }` would silently get the default ttl).
let t: TestMeter;
let srv: Awaited<ReturnType<typeof listen>>;
let client: MeterApi;

beforeAll(async () => {
  t = await testMeter();
  srv = await listen(createMeterHandler(t.meter, { secretKeys: SECRET, basePath: "/meter" }));
  client = createMeterClient({ url: srv.url + "/meter/", secretKey: SECRET });
  await t.meter.upsertSubscription({ userId: "alice", planId: "pro" });
});
afterAll(async () => {
  await srv.close();
  await t.cleanup();
});

const error = (p: Promise<unknown>) => p.then(() => null, (e: MeterError) => e);

test("unknown options at any depth are invalid_request naming the path, locally and remotely alike", async () => {
  const r = await t.meter.reserve("alice", "llm.tokens", 100);
  if (!r.allowed) throw new Error("denied");
  const calls: Array<[(api: MeterApi) => Promise<unknown>, string]> = [
    [(api) => api.reserve("alice", "llm.tokens", 1, { ttll: 5 } as never), "ttll"],
    [(api) => api.commit(r.reservationId, { actuall: 5 } as never), "actuall"],
    [(api) => api.commit(r.reservationId, { usage: { inputTokens: 1, outputTokens: 1, cachedTokens: 1 } as never }), "usage.cachedTokens"],
    [(api) => api.track("alice", "llm.tokens", 1, { reservationID: "x" } as never), "reservationID"],
    [(api) => api.grant("alice", "tokens", 1, { expires: "2030-01-01" } as never), "expires"],
    [(api) => api.upsertSubscription({ userId: "alice", planId: "pro", plan: "free" } as never), "plan"],
    [(api) => api.upsertSubscription({ userId: "alice", planId: "pro", customLimits: { tokens: { quotta: 1 } } as never }), "customLimits.tokens.quotta"],
  ];
  for (const [call, field] of calls) {
    for (const api of [t.meter, client]) {
      expect(await error(call(api))).toMatchObject({ code: "invalid_request", details: { field } });
    }
  }
  expect(await t.meter.audit("alice")).toEqual([]);
});
