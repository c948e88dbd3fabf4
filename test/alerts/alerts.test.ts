import { internalsOf } from "../../src/server/internals.js";
import { createHmac } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, test } from "vitest";
import { createMeter, signAlert, verifyAlertSignature, type AlertsOptions, type Meter, type MeterAlert } from "../../src/server/index.js";
import { clockPool } from "../helpers/clock.js";
import { testMeter, type TestMeter } from "../helpers/meter.js";
import { topUpTest, type TopUpTest } from "../stripe/autoTopUpHelpers.js";

const SECRET = "alert_secret_0123456789abcdef0123456789";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let t: TestMeter | null = null;
let tu: TopUpTest | null = null;
const extra: Meter[] = [];
let server: Server | null = null;
afterEach(async () => {
  for (const m of extra.splice(0)) await m.close().catch(() => {});
  await t?.cleanup();
  await tu?.cleanup();
  t = tu = null;
  await new Promise((r) => (server ? server.close(r) : r(null)));
  server = null;
});

const THRESHOLDS: AlertsOptions["thresholds"] = [
  { counter: "tokens", usedPercent: 80 },
  { counter: "tokens", remainingBelow: 100 },
];

async function spend(meter: Meter, userId: string, amount: number) {
  const r = await meter.reserve(userId, "llm.tokens", amount);
  if (!r.allowed) throw new Error("limit reached");
  await meter.commit(r.reservationId, { actual: amount });
  await internalsOf(meter).notifier.flush();
  await meter.alerts.flush();
}

/** A meter with alerts delivered only when the test calls run(). */
async function alertsMeter(received: MeterAlert[], o: Partial<AlertsOptions> = {}) {
  t = await testMeter({ defaultPlan: "free", alerts: { thresholds: THRESHOLDS, interval: 0, onAlert: (a) => void received.push(a), ...o } });
  return t.meter;
}

function another(url: string, alerts: AlertsOptions): Meter {
  const m = createMeter({
    database: url,
    plans: { free: { limits: { tokens: { quota: 1000, unit: "tokens", period: "month" } } } },
    meters: { "llm.tokens": { counter: "tokens" } },
    defaultPlan: "free",
    sweepInterval: 0,
    alerts,
  });
  extra.push(m);
  return m;
}

describe("balance thresholds", () => {
  test("each threshold fires once per crossing: 80 % used once, remaining below N again after a grant lifted it", async () => {
    const got: MeterAlert[] = [];
    const meter = await alertsMeter(got);
    await spend(meter, "ann", 700);
    await meter.alerts.run();
    expect(got).toEqual([]);
    await spend(meter, "ann", 100); // 80 %
    await spend(meter, "ann", 50);
    await meter.alerts.run();
    expect(got.map((a) => [a.type, a.data.rule])).toEqual([["balance.threshold", "tokens:used:80"]]);
    expect(got[0]).toMatchObject({ userId: "ann", counter: "tokens", data: { quota: 1000, used: 800, usedPercent: 80 } });
    await spend(meter, "ann", 60); // 90 left
    await spend(meter, "ann", 10);
    await meter.alerts.run();
    expect(got.map((a) => a.data.rule)).toEqual(["tokens:used:80", "tokens:remaining:100"]);
    await meter.grant("ann", "tokens", 1000, { idempotencyKey: "g1" });
    await internalsOf(meter).notifier.flush();
    await meter.alerts.flush();
    await spend(meter, "ann", 1000); // below again: a new crossing
    await meter.alerts.run();
    expect(got.map((a) => a.data.rule)).toEqual(["tokens:used:80", "tokens:remaining:100", "tokens:remaining:100"]);
    expect(new Set(got.map((a) => a.id)).size).toBe(3);
  });

  test("alerts survive a restart: queued by one process, delivered once by the next, and the crossing is not fired again", async () => {
    const first: MeterAlert[] = [];
    const meter = await alertsMeter(first);
    await spend(meter, "bob", 850);
    const url = t!.url;
    // A second process with no callback delivers nothing yet; the first one "dies" before delivering.
    const second: MeterAlert[] = [];
    const next = another(url, { thresholds: THRESHOLDS, interval: 0, onAlert: (a) => void second.push(a) });
    await spend(next, "bob", 10); // still crossed: nothing new
    expect((await next.alerts.run()).delivered).toHaveLength(1);
    expect((await next.alerts.run()).delivered).toHaveLength(0);
    expect(second.map((a) => a.data.rule)).toEqual(["tokens:used:80"]);
    expect(first).toEqual([]);
  });

  test("a new period starts uncrossed: the same threshold fires again next month, once, across a restart", async () => {
    const db = await testMeter();
    t = db;
    const got: MeterAlert[] = [];
    const clock = clockPool(db.url);
    try {
      await clock.set("2026-11-10T00:00:00Z");
      const nov = createMeter({
        database: clock.pool,
        plans: { free: { limits: { tokens: { quota: 1000, unit: "tokens", period: "month" } } } },
        meters: { "llm.tokens": { counter: "tokens" } },
        defaultPlan: "free",
        sweepInterval: 0,
        alerts: { thresholds: [{ counter: "tokens", usedPercent: 80 }], interval: 0, onAlert: (a) => void got.push(a) },
      });
      await spend(nov, "eli", 850);
      await spend(nov, "eli", 10);
      await nov.alerts.run();
      await nov.close();
      // A restart, in December: the quota renewed, so crossing 80 % again is a new alert.
      await clock.set("2026-12-10T00:00:00Z");
      const decClock = createMeter({
        database: clock.pool,
        plans: { free: { limits: { tokens: { quota: 1000, unit: "tokens", period: "month" } } } },
        meters: { "llm.tokens": { counter: "tokens" } },
        defaultPlan: "free",
        sweepInterval: 0,
        alerts: { thresholds: [{ counter: "tokens", usedPercent: 80 }], interval: 0, onAlert: (a) => void got.push(a) },
      });
      extra.push(decClock);
      await spend(decClock, "eli", 700);
      await decClock.alerts.run();
      expect(got).toHaveLength(1);
      await spend(decClock, "eli", 150);
      await spend(decClock, "eli", 10);
      await decClock.alerts.run();
      expect(got.map((a) => a.data.periodStart)).toEqual(["2026-11-01T00:00:00.000Z", "2026-12-01T00:00:00.000Z"]);
      expect(new Set(got.map((a) => a.id)).size).toBe(2);
    } finally {
      for (const m of extra.splice(0)) await m.close().catch(() => {});
      await clock.pool.end();
    }
  });

  test("64 concurrent reservations across four processes crossing a threshold queue one alert", async () => {
    const got: MeterAlert[] = [];
    const meter = await alertsMeter(got);
    const meters = [meter, ...[1, 2, 3].map(() => another(t!.url, { thresholds: THRESHOLDS, interval: 0 }))];
    await Promise.all(Array.from({ length: 64 }, (_, i) => spend(meters[i % 4]!, "cy", 15)));
    for (const m of meters) await m.alerts.flush();
    await meter.alerts.run();
    expect(got.map((a) => a.data.rule).sort()).toEqual(["tokens:remaining:100", "tokens:used:80"]);
  });

  test("bad thresholds are refused at createMeter", async () => {
    const db = await testMeter();
    t = db;
    for (const thresholds of [[{ counter: "tokens" }], [{ counter: "tokens", usedPercent: 80, remainingBelow: 5 }], [{ counter: "nope", usedPercent: 80 }]]) {
      expect(() => another(db.url, { thresholds: thresholds as AlertsOptions["thresholds"] })).toThrow();
    }
    expect(() => another(db.url, { webhook: { url: "https://x.test/hook", secret: "short" } })).toThrow(/32 characters/);
  });
});

describe("the signed webhook", () => {
  async function receiver(statuses: number[]) {
    const calls: Array<{ body: string; signature: string | undefined }> = [];
    server = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        calls.push({ body: Buffer.concat(chunks).toString("utf8"), signature: req.headers["meterkit-signature"] as string | undefined });
        res.writeHead(statuses.shift() ?? 200);
        res.end();
      });
    });
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/alerts`, calls };
  }

  test("alerts are POSTed signed t=…,v1=HMAC-SHA256(secret, t.body); a failed delivery is retried with the same id", async () => {
    const { url, calls } = await receiver([500]);
    const meter = await alertsMeter([], { onAlert: undefined, webhook: { url, secret: SECRET } });
    await spend(meter, "dan", 800);
    expect((await meter.alerts.run()).retrying).toHaveLength(1);
    await internalsOf(meter).pool.query(`UPDATE ${internalsOf(meter).schema}.alert_outbox SET next_attempt_at = now()`);
    expect((await meter.alerts.run()).delivered).toHaveLength(1);
    expect(calls).toHaveLength(2);
    expect(calls[0]!.body).toBe(calls[1]!.body);
    const alert = JSON.parse(calls[1]!.body) as MeterAlert;
    expect(alert).toMatchObject({ type: "balance.threshold", userId: "dan", counter: "tokens" });
    expect(calls[1]!.signature).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(verifyAlertSignature(calls[1]!.body, calls[1]!.signature, SECRET)).toBe(true);
    expect(verifyAlertSignature(calls[1]!.body, calls[1]!.signature, [SECRET.replace("a", "b"), SECRET])).toBe(true);
    expect(verifyAlertSignature(calls[1]!.body + " ", calls[1]!.signature, SECRET)).toBe(false);
    expect(verifyAlertSignature(calls[1]!.body, calls[1]!.signature, SECRET.replace("a", "b"))).toBe(false);
    expect(verifyAlertSignature(calls[1]!.body, undefined, SECRET)).toBe(false);
  });

  test("the signature scheme: an old timestamp is refused, a known vector verifies", () => {
    const payload = '{"id":"evt_1"}';
    const header = signAlert(payload, "s".repeat(32), 1_700_000_000);
    expect(header).toBe(`t=1700000000,v1=${createHmac("sha256", "s".repeat(32)).update(`1700000000.${payload}`).digest("hex")}`);
    expect(verifyAlertSignature(payload, header, "s".repeat(32), { now: 1_700_000_100 })).toBe(true);
    expect(verifyAlertSignature(payload, header, "s".repeat(32), { now: 1_700_000_301 })).toBe(false);
  });
});

describe("auto top-up outcomes", () => {
  test("a succeeded top-up and a declined one (failed + paused) are alerts, once each", async () => {
    const got: MeterAlert[] = [];
    tu = await topUpTest({ alerts: { interval: 0, onAlert: (a) => void got.push(a) } });
    await tu.saveCard("eve");
    await tu.meter.autoTopUp.set("eve", { counter: "tokens", enabled: true, packId: "starter", threshold: 500, maxPerPeriod: 5000 });
    await spend(tu.meter, "eve", 600);
    await tu.meter.autoTopUp.run();
    await tu.relay();
    tu.standIn.setCard([...tu.standIn.paymentIntents.values()][0]!.payment_method!, "decline");
    await spend(tu.meter, "eve", 10_000);
    await tu.meter.autoTopUp.run();
    await tu.relay();
    await tu.meter.alerts.run();
    expect(got.map((a) => a.type)).toEqual(["auto_top_up.succeeded", "auto_top_up.failed", "auto_top_up.paused"]);
    expect(got[2]!.data).toMatchObject({ reason: "card_declined", amount: 500, currency: "usd", credits: 10_000 });
  });
});
