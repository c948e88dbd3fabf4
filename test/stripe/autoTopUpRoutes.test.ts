import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createMeterHandler, type MeterHandler } from "../../src/server/index.js";
import { topUpTest, type TopUpTest } from "./autoTopUpHelpers.js";

let t: TopUpTest;
let h: MeterHandler;
beforeAll(async () => {
  t = await topUpTest();
  h = createMeterHandler(t.meter, { identify: (req) => req.headers.get("x-user") });
});
afterAll(async () => {
  await t?.cleanup();
});

const put = (user: string, body: unknown) =>
  h(new Request("http://x/auto-top-up", { method: "PUT", headers: { "x-user": user, "content-type": "application/json" }, body: JSON.stringify(body) }));

describe("GET/PUT /auto-top-up and POST /auto-top-up/setup", () => {
  test("the signed-in user reads and changes only their own settings", async () => {
    let res = await h(new Request("http://x/auto-top-up", { headers: { "x-user": "ann" } }));
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(await res.json()).toEqual({ paymentMethodSaved: false, counters: [] });
    res = await put("ann", { counter: "tokens", enabled: true, packId: "starter", threshold: 500, maxPerPeriod: 1000 });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ counter: "tokens", enabled: true, status: "active" });
    res = await h(new Request("http://x/auto-top-up", { headers: { "x-user": "bob" } }));
    expect(await res.json()).toEqual({ paymentMethodSaved: false, counters: [] });
  });

  test("unknown fields (a userId too), bad values and non-JSON bodies are invalid_request; no user is 401", async () => {
    for (const body of [
      { counter: "tokens", enabled: true, packId: "starter", threshold: 500, maxPerPeriod: 1000, userId: "bob" },
      { counter: "tokens", enabled: "yes" },
      { counter: "tokens", enabled: true, packId: "starter", threshold: -1, maxPerPeriod: 1000 },
    ]) {
      const res = await put("ann", body);
      expect(res.status).toBe(400);
      expect((await res.json()).error.code).toBe("invalid_request");
    }
    const anon = await h(new Request("http://x/auto-top-up"));
    expect(anon.status).toBe(401);
  });

  test("POST /auto-top-up/setup answers the URL of a Checkout Session in setup mode for the user", async () => {
    const res = await h(new Request("http://x/auto-top-up/setup", { method: "POST", headers: { "x-user": "cy" } }));
    expect(res.status).toBe(200);
    const { url } = (await res.json()) as { url: string };
    const session = t.standIn.sessions.get(url.split("/").pop()!)!;
    expect(session).toMatchObject({ mode: "setup", client_reference_id: "cy" });
  });
});

describe("Idempotency-Key on PUT /auto-top-up", () => {
  const putKeyed = (user: string, key: string, body: unknown) =>
    h(
      new Request("http://x/auto-top-up", {
        method: "PUT",
        headers: { "x-user": user, "content-type": "application/json", "idempotency-key": key },
        body: JSON.stringify(body),
      }),
    );
  const ON = { counter: "tokens", enabled: true, packId: "starter", threshold: 500, maxPerPeriod: 1000 };

  test("the same key and body answer the first result without applying it again; another body is 409 conflict", async () => {
    let res = await putKeyed("kay", "k-1", ON);
    expect(res.status).toBe(200);
    const first = await res.json();
    // Meanwhile the user turns it off (another request): a retry of the first must not turn it back on.
    expect((await put("kay", { counter: "tokens", enabled: false })).status).toBe(200);
    res = await putKeyed("kay", "k-1", { ...ON });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(first);
    expect((await t.meter.autoTopUp.get("kay")).counters[0]).toMatchObject({ enabled: false, status: "off" });
    res = await putKeyed("kay", "k-1", { ...ON, threshold: 700 });
    expect(res.status).toBe(409);
    expect((await res.json()).error.code).toBe("conflict");
    // Keys are per user: another user's same key is another request.
    expect((await putKeyed("lou", "k-1", { ...ON, threshold: 700 })).status).toBe(200);
  });

  test("a request refused as invalid frees its key for a corrected retry", async () => {
    expect((await putKeyed("max", "k-2", { ...ON, threshold: -1 })).status).toBe(400);
    expect((await putKeyed("max", "k-2", ON)).status).toBe(200);
  });
});
