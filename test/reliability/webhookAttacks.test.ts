import fc from "fast-check";
import Stripe from "stripe";
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from "vitest";
import { createMeterHandler, type MeterHandler } from "../../src/server/index.js";
import { listen } from "../http/fixtures.js";
import { paidSession, stripeEvent, stripeTest, WEBHOOK_SECRET, type StripeTest } from "../stripe/helpers.js";
import { countFailures, recordFigures } from "./harness/report.js";
import { SIZES } from "./harness/sizes.js";
import { writeSnapshot } from "./harness/snapshot.js";
import { internalsOf } from "../../src/server/internals.js";

// Attacks on POST /stripe/webhook through the real handler: forged, replayed, stale and
// modified deliveries, valid signatures on events naming other users or unknown packs, floods.
const failures = countFailures(afterEach);
let s: StripeTest;
let handler: MeterHandler<{ user?: string }>;
let srv: Awaited<ReturnType<typeof listen>>;
const signer = new Stripe("sk_test_signer");
// The long form (npm run soak) floods and fuzzes far more.
vi.setConfig({ testTimeout: SIZES.fuzzTimeout });
const figures = { deliveries: 0, byStatus: {} as Record<string, number> };

beforeAll(async () => {
  // No default plan: a paid event for an unknown user must not vanish.
  s = await stripeTest({ meter: { defaultPlan: undefined } });
  handler = createMeterHandler<{ user?: string }>(s.meter, { identify: (_r, c) => c?.user, onError: () => {} });
  srv = await listen(((req: Request) => handler(req, { user: req.headers.get("x-test-user") ?? undefined })) as (req: Request) => Promise<Response>);
  s.standIn.webhookUrl = `${srv.url}/stripe/webhook`;
  for (const u of ["wa-alice", "wa-bob", "wa-flood", "wa-replay", "wa-mut"]) await s.meter.upsertSubscription({ userId: u, planId: "free" });
});
afterEach(() => {
  vi.useRealTimers();
});
afterAll(async () => {
  recordFigures("webhook attacks", { operations: figures.deliveries, violations: failures.n, errorsByCode: figures.byStatus });
  expect(await s.meter.audit()).toEqual([]);
  await srv.close();
  await s.cleanup();
});

async function post(payload: string | Uint8Array, signature: string | null): Promise<{ status: number; body: Record<string, any> }> {
  figures.deliveries++;
  const res = await handler(
    new Request("http://app.test/stripe/webhook", {
      method: "POST",
      headers: { "content-type": "application/json", ...(signature === null ? {} : { "stripe-signature": signature }) },
      body: payload as BodyInit,
    }),
  );
  figures.byStatus[res.status] = (figures.byStatus[res.status] ?? 0) + 1;
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}
const sign = (payload: string, o: { timestamp?: number; secret?: string } = {}) =>
  signer.webhooks.generateTestHeaderString({ payload, secret: o.secret ?? WEBHOOK_SECRET, ...(o.timestamp ? { timestamp: o.timestamp } : {}) });
const granted = async (user: string) => (await s.meter.usage(user)).counters.find((c) => c.key === "tokens")!.granted;

describe("forged and modified deliveries", () => {
  test("any modification of a signed delivery — body byte, timestamp, scheme, secret, stale age — is a 400 that writes nothing", async () => {
    const payload = JSON.stringify(stripeEvent("checkout.session.completed", paidSession("wa-mut", { id: "cs_mut" }), "evt_mut"));
    const now = Math.floor(Date.now() / 1000);
    const header = sign(payload, { timestamp: now });
    const v1 = /v1=([0-9a-f]+)/.exec(header)![1]!;
    const mutations = fc.oneof(
      fc.record({ kind: fc.constant("flip-byte"), at: fc.nat(payload.length - 1), bit: fc.integer({ min: 0, max: 6 }) }),
      fc.record({ kind: fc.constant("append"), text: fc.constantFrom(" ", "\n", "{}", "\u0000") }),
      fc.record({ kind: fc.constant("timestamp"), delta: fc.integer({ min: -100_000, max: 100_000 }).filter((d) => d !== 0) }),
      fc.record({ kind: fc.constantFrom("v0-scheme", "no-v1", "upper-hex", "other-secret", "stale", "empty", "bogus-second-v1-only", "truncated-v1", "other-body") }),
    );
    await fc.assert(
      fc.asyncProperty(mutations, async (m) => {
        let body = payload;
        let sig = header;
        switch (m.kind) {
          case "flip-byte": {
            const b = Buffer.from(payload);
            const at = (m as { at: number }).at;
            b[at] = b[at]! ^ (1 << (m as { bit: number }).bit);
            if (b.equals(Buffer.from(payload))) return;
            body = b.toString("latin1");
            break;
          }
          case "append": body = payload + (m as { text: string }).text; break;
          case "timestamp": sig = header.replace(/t=\d+/, `t=${now + (m as { delta: number }).delta}`); break;
          case "v0-scheme": sig = header.replace("v1=", "v0="); break;
          case "no-v1": sig = `t=${now}`; break;
          case "upper-hex": sig = header.replace(v1, v1.toUpperCase()); if (v1 === v1.toUpperCase()) return; break;
          case "other-secret": sig = sign(payload, { timestamp: now, secret: "whsec_attacker_0123456789" }); break;
          case "stale": sig = sign(payload, { timestamp: now - 301 }); break;
          case "empty": sig = ""; break;
          case "bogus-second-v1-only": sig = `t=${now},v1=${"0".repeat(64)}`; break;
          case "truncated-v1": sig = header.slice(0, -2); break;
          case "other-body": sig = sign(payload.replace("wa-mut", "wa-bob"), { timestamp: now }); break;
        }
        const before = await writeSnapshot(internalsOf(s.meter).pool);
        const r = await post(body, sig || null);
        expect(r.status, `${m.kind}`).toBe(400);
        expect(r.body.error.code).toBe("invalid_request");
        expect(await writeSnapshot(internalsOf(s.meter).pool)).toBe(before);
      }),
      { numRuns: SIZES.fuzzRuns * 2 },
    );
    expect(await granted("wa-mut")).toBe(0);
    // The untouched delivery is accepted: the refusals were the checks, not a broken path.
    expect((await post(payload, header)).status).toBe(200);
    expect(await granted("wa-mut")).toBe(10_000);
  }, SIZES.fuzzTimeout);

  test("random signature headers and random bodies are never a 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string(), fc.uint8Array({ maxLength: 300 }), fc.jsonValue().map((v) => JSON.stringify(v))), fc.option(fc.string({ maxLength: 500 })), async (body, sig) => {
        const r = await post(body, sig);
        expect(r.status).toBe(400);
      }),
      { numRuns: SIZES.fuzzRuns * 2 },
    );
  }, SIZES.fuzzTimeout);
});

describe("replays and floods", () => {
  test(`the same signed delivery flooded ${SIZES.webhookFlood} times at once credits once; every answer is 2xx`, async () => {
    const payload = JSON.stringify(stripeEvent("checkout.session.completed", paidSession("wa-flood", { id: "cs_flood" }), "evt_flood"));
    const header = sign(payload);
    const results = await Promise.all(Array.from({ length: SIZES.webhookFlood }, () => post(payload, header)));
    expect(results.map((r) => r.status).every((x) => x === 200)).toBe(true);
    expect(results.filter((r) => !r.body.duplicate)).toHaveLength(1);
    // Other event ids for the same session (Stripe retries, async success) credit nothing more.
    const more = await Promise.all(
      Array.from({ length: SIZES.webhookFlood }, (_, i) => {
        const p = JSON.stringify(stripeEvent(i % 2 ? "checkout.session.async_payment_succeeded" : "checkout.session.completed", paidSession("wa-flood", { id: "cs_flood" }), `evt_flood_${i}`));
        return post(p, sign(p));
      }),
    );
    expect(more.every((r) => r.status === 200)).toBe(true);
    expect(await granted("wa-flood")).toBe(10_000);
  });

  test("a captured delivery replayed after the 300 s tolerance is refused, even though it was genuine", async () => {
    const payload = JSON.stringify(stripeEvent("checkout.session.completed", paidSession("wa-replay", { id: "cs_replay" }), "evt_replay"));
    const header = sign(payload);
    expect((await post(payload, header)).status).toBe(200);
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.now() + 301_000);
    const replay = await post(payload, header);
    expect(replay.status).toBe(400);
    vi.useRealTimers();
    expect(await granted("wa-replay")).toBe(10_000);
  });
});

describe("valid signatures on events naming other users or unknown packs", () => {
  test("a user buying through /checkout cannot direct the credits to another user, whatever the body says", async () => {
    const res = await fetch(`${srv.url}/checkout`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-test-user": "wa-alice" },
      body: JSON.stringify({ packId: "starter", userId: "wa-bob", client_reference_id: "wa-bob", metadata: { meterkit_user_id: "wa-bob", meterkit_credits: "999999" } }),
    });
    expect(res.status).toBe(200);
    const session = [...s.standIn.sessions.values()].at(-1)!;
    expect(session.metadata).toMatchObject({ meterkit_user_id: "wa-alice", meterkit_credits: "10000" });
    await s.standIn.pay(session.id);
    expect(await granted("wa-alice")).toBe(10_000);
    expect(await granted("wa-bob")).toBe(0);
  });

  test.each([
    ["an unknown pack with no credits", { meterkit_user_id: "wa-bob", meterkit_pack_id: "ghost" }],
    ["a counter no plan defines", { meterkit_user_id: "wa-bob", meterkit_pack_id: "starter", meterkit_counter: "gold", meterkit_credits: "10" }],
    ["zero credits", { meterkit_user_id: "wa-bob", meterkit_pack_id: "starter", meterkit_counter: "tokens", meterkit_credits: "0" }],
    ["negative credits", { meterkit_user_id: "wa-bob", meterkit_pack_id: "starter", meterkit_counter: "tokens", meterkit_credits: "-500" }],
    ["credits in exponent form", { meterkit_user_id: "wa-bob", meterkit_pack_id: "starter", meterkit_counter: "tokens", meterkit_credits: "1e9" }],
    ["credits beyond 2^53", { meterkit_user_id: "wa-bob", meterkit_pack_id: "starter", meterkit_counter: "tokens", meterkit_credits: "99999999999999999" }],
    ["a user with no subscription (and no default plan)", { meterkit_user_id: "wa-nobody", meterkit_pack_id: "starter", meterkit_counter: "tokens", meterkit_credits: "10" }],
  ])("a signed paid event for %s credits nothing and is failed (5xx) so that Stripe retries it", async (_name, metadata) => {
    const before = await writeSnapshot(internalsOf(s.meter).pool);
    const p = JSON.stringify(stripeEvent("checkout.session.completed", paidSession("wa-bob", { metadata: metadata as Record<string, string> })));
    const r = await post(p, sign(p));
    expect(r.status).toBe(500);
    expect(r.body.error.code).toBe("internal");
    expect(JSON.stringify(r.body)).not.toMatch(/\n\s+at |node_modules/);
    expect(await writeSnapshot(internalsOf(s.meter).pool)).toBe(before);
    expect(await granted("wa-bob")).toBe(0);
  });

  test("the failed event for an unknown user is credited once on Stripe's retry after the user subscribes", async () => {
    const p = JSON.stringify(stripeEvent("checkout.session.completed", paidSession("wa-late", { id: "cs_late" }), "evt_late"));
    expect((await post(p, sign(p))).status).toBe(500);
    await s.meter.upsertSubscription({ userId: "wa-late", planId: "free" });
    const retries = await Promise.all(Array.from({ length: 5 }, () => post(p, sign(p))));
    expect(retries.every((r) => r.status === 200)).toBe(true);
    expect(await granted("wa-late")).toBe(10_000);
  });

  test("events that are not meterkit's (other types, subscription mode, no metadata) are acknowledged and write nothing", async () => {
    const before = await writeSnapshot(internalsOf(s.meter).pool);
    const foreign = [
      stripeEvent("checkout.session.completed", { ...paidSession("wa-bob"), metadata: {} }),
      stripeEvent("checkout.session.completed", { ...paidSession("wa-bob"), mode: "subscription" }),
      stripeEvent("customer.created", { id: "cus_1", object: "customer", metadata: { meterkit_user_id: "wa-bob" } }),
      stripeEvent("checkout.session.completed", paidSession("wa-bob", { paymentStatus: "unpaid" })),
    ];
    for (const e of foreign) {
      const p = JSON.stringify(e);
      const r = await post(p, sign(p));
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ received: true, ignored: true });
    }
    expect(await writeSnapshot(internalsOf(s.meter).pool)).toBe(before);
  });
});
