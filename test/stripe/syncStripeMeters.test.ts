import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { linkStripeCustomer } from "../../src/server/index.js";
import { SYNC_PLANS } from "./fixtures/syncPlans.js";
import { stripeTest, type StripeTest } from "./helpers.js";
import { internalsOf } from "../../src/server/internals.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DAY = 86_400_000;

let t: StripeTest;
beforeEach(async () => {
  t = await stripeTest({
    meter: { plans: SYNC_PLANS, meters: {}, defaultPlan: "postpaid" },
    stripe: { packs: [], meters: { tokens: { eventName: "llm_tokens" } }, meterSettleMs: 0 },
  });
});
afterEach(async () => {
  await t?.cleanup();
});

/** Usage recorded in a past period (the ledger charges only the current one, so it is written directly). */
async function pastUsage(userId: string, used: number, start: Date, end: Date, counter = "tokens") {
  const s = internalsOf(t.meter).schema;
  await internalsOf(t.meter).pool.query(
    `INSERT INTO ${s}.balances (user_id, counter_key, period_start, period_end, used) VALUES ($1, $2, $3, $4, $5)`,
    [userId, counter, start, end, used],
  );
}

/** A closed period `daysAgo` days back, one day long, aligned to whole seconds. */
function closedDay(daysAgo: number): [Date, Date] {
  const end = new Date(Math.floor((Date.now() - daysAgo * DAY) / 1000) * 1000);
  return [new Date(end.getTime() - DAY), end];
}

async function outbox() {
  const s = internalsOf(t.meter).schema;
  const { rows } = await internalsOf(t.meter).pool.query<{ user_id: string; status: string; identifier: string; value: string }>(
    `SELECT user_id, status, identifier, value FROM ${s}.stripe_meter_outbox ORDER BY user_id, period_start`,
  );
  return rows;
}

const meterPosts = () => t.standIn.requests.filter((r) => r.path === "/v1/billing/meter_events");

/** How often each identifier was POSTed, and how often Stripe (the stand-in) counted it. */
function perIdentifier() {
  const posts = new Map<string, number>();
  for (const r of meterPosts()) posts.set(String(r.body.identifier), (posts.get(String(r.body.identifier)) ?? 0) + 1);
  const counted = new Map<string, number>();
  for (const e of t.standIn.meterEvents) counted.set(e.identifier, (counted.get(e.identifier) ?? 0) + 1);
  return { posts, counted };
}

async function users(n: number, daysAgo = 2) {
  const [start, end] = closedDay(daysAgo);
  for (let i = 0; i < n; i++) {
    await pastUsage(`u${i}`, 100 + i, start, end);
    await linkStripeCustomer(t.meter, `u${i}`, `cus_u${i}`);
  }
  return { start, end };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("pushing closed periods", () => {
  test("each closed period's total is pushed once, with its customer, a deterministic identifier and the period's last second", async () => {
    const { end } = await users(3);
    const report = await t.meter.syncStripeMeters();
    expect(report).toMatchObject({ queued: 3, failed: [], tooOld: [], pending: 0, needsAttention: 0 });
    expect(report.sent.map((s) => [s.userId, s.value]).sort()).toEqual([
      ["u0", 100],
      ["u1", 101],
      ["u2", 102],
    ]);
    const events = [...t.standIn.meterEvents].sort((a, b) => a.payload.stripe_customer_id!.localeCompare(b.payload.stripe_customer_id!));
    expect(events.map((e) => e.payload)).toEqual([
      { stripe_customer_id: "cus_u0", value: "100" },
      { stripe_customer_id: "cus_u1", value: "101" },
      { stripe_customer_id: "cus_u2", value: "102" },
    ]);
    for (const e of events) {
      expect(e.event_name).toBe("llm_tokens");
      expect(e.timestamp).toBe(end.getTime() / 1000 - 1);
      expect(e.identifier).toMatch(/^mk_[0-9a-f]{64}$/);
    }
    expect(new Set(events.map((e) => e.identifier)).size).toBe(3);
    // The Stripe idempotency key is the identifier too.
    expect(meterPosts().map((r) => r.headers["idempotency-key"])).toEqual(meterPosts().map((r) => r.body.identifier));

    const again = await t.meter.syncStripeMeters();
    expect(again).toMatchObject({ queued: 0, sent: [], failed: [] });
    expect(meterPosts()).toHaveLength(3);
  });

  test("the identifier of a period is the same however many times it is computed", async () => {
    await users(1);
    await t.meter.syncStripeMeters();
    const [first] = await outbox();
    await internalsOf(t.meter).pool.query(`DELETE FROM ${internalsOf(t.meter).schema}.stripe_meter_outbox`);
    t.standIn.fail({ path: "/v1/billing/meter_events", times: 1 });
    await t.meter.syncStripeMeters();
    expect((await outbox())[0]!.identifier).toBe(first!.identifier);
  });

  test("the open period, periods with no usage and unmapped counters are not pushed", async () => {
    await t.meter.track("live", "tokens", 500); // the current, open period
    const [start, end] = closedDay(1);
    await pastUsage("idle", 0, start, end);
    await pastUsage("painter", 9, start, end, "images");
    await linkStripeCustomer(t.meter, "live", "cus_live");
    const report = await t.meter.syncStripeMeters();
    expect(report.queued).toBe(0);
    expect(meterPosts()).toHaveLength(0);
  });

  test("a period is pushed only once the settle delay after its end has passed", async () => {
    const settling = await stripeTest({
      meter: { plans: SYNC_PLANS, meters: {}, defaultPlan: "postpaid" },
      stripe: { packs: [], meters: { tokens: { eventName: "llm_tokens" } }, meterSettleMs: 60_000 },
    });
    try {
      const s = internalsOf(settling.meter).schema;
      const end = new Date(Date.now() - 30_000);
      await internalsOf(settling.meter).pool.query(
        `INSERT INTO ${s}.balances (user_id, counter_key, period_start, period_end, used) VALUES ('just', 'tokens', $1, $2, 5), ('settled', 'tokens', $1, $3, 5)`,
        [new Date(end.getTime() - DAY), end, new Date(Date.now() - 61_000)],
      );
      expect((await settling.meter.syncStripeMeters()).queued).toBe(1);
    } finally {
      await settling.cleanup();
    }
  });

  test("custom payload keys of the Stripe Meter are used", async () => {
    const custom = await stripeTest({
      meter: { plans: SYNC_PLANS, meters: {}, defaultPlan: "postpaid" },
      stripe: { packs: [], meters: { tokens: { eventName: "tok", valueKey: "tokens", customerKey: "customer" } }, meterSettleMs: 0 },
    });
    try {
      const [start, end] = closedDay(1);
      await internalsOf(custom.meter).pool.query(
        `INSERT INTO ${internalsOf(custom.meter).schema}.balances (user_id, counter_key, period_start, period_end, used) VALUES ('k', 'tokens', $1, $2, 7)`,
        [start, end],
      );
      await linkStripeCustomer(custom.meter, "k", "cus_k");
      await custom.meter.syncStripeMeters();
      expect(custom.standIn.meterEvents.map((e) => [e.event_name, e.payload])).toEqual([["tok", { customer: "cus_k", tokens: "7" }]]);
    } finally {
      await custom.cleanup();
    }
  });
});

describe("failures", () => {
  test("a Stripe 500 is reported and retried by a later run: sent once in the end", async () => {
    await users(2);
    t.standIn.fail({ path: "/v1/billing/meter_events", status: 500 });
    const first = await t.meter.syncStripeMeters();
    expect(first.sent).toHaveLength(1);
    expect(first.failed).toHaveLength(1);
    expect(first.failed[0]).toMatchObject({ willRetry: true });
    expect(first.failed[0]!.error).toContain("500");
    expect(first.pending).toBe(1);
    await sleep(1100); // the first backoff
    const second = await t.meter.syncStripeMeters();
    expect(second.sent).toHaveLength(1);
    expect(second.pending).toBe(0);
    expect(t.standIn.meterEvents).toHaveLength(2);
    expect((await outbox()).map((r) => r.status)).toEqual(["sent", "sent"]);
  });

  test("a request that times out is retried with the same identifier", async () => {
    await users(1);
    t.standIn.fail({ path: "/v1/billing/meter_events", mode: "timeout" });
    const first = await t.meter.syncStripeMeters({ requestTimeoutMs: 300 });
    expect(first.failed).toHaveLength(1);
    expect(first.failed[0]!.willRetry).toBe(true);
    await sleep(1100);
    await t.meter.syncStripeMeters({ requestTimeoutMs: 300 });
    const { posts, counted } = perIdentifier();
    expect([...posts.values()]).toEqual([2]);
    expect([...counted.values()]).toEqual([1]);
  });

  test("Stripe recording the event but the answer being lost (a crash between push and bookkeeping) does not double it", async () => {
    await users(3);
    t.standIn.fail({ path: "/v1/billing/meter_events", mode: "accept-then-timeout" });
    const first = await t.meter.syncStripeMeters({ requestTimeoutMs: 300, concurrency: 1 });
    expect(first.sent).toHaveLength(2);
    expect(first.failed).toHaveLength(1);
    expect(t.standIn.meterEvents).toHaveLength(3); // Stripe has all three already
    await sleep(1100);
    const second = await t.meter.syncStripeMeters({ requestTimeoutMs: 300 });
    expect(second.sent).toHaveLength(1);
    const { posts, counted } = perIdentifier();
    expect([...posts.values()].sort()).toEqual([1, 1, 2]);
    expect([...counted.values()]).toEqual([1, 1, 1]);
  });

  test("two sync runs at once push every period exactly once between them", async () => {
    await users(40);
    const [a, b] = await Promise.all([t.meter.syncStripeMeters({ concurrency: 3 }), t.meter.syncStripeMeters({ concurrency: 3 })]);
    expect(a.sent.length + b.sent.length).toBe(40);
    const { posts } = perIdentifier();
    expect(posts.size).toBe(40);
    expect([...posts.values()].every((n) => n === 1)).toBe(true);
    expect((await outbox()).every((r) => r.status === "sent")).toBe(true);
  });

  test("a run skips the periods another run holds instead of waiting for or re-sending them", async () => {
    await users(5);
    const s = internalsOf(t.meter).schema;
    const pool = internalsOf(t.meter).pool;
    await pool.query(`SELECT ${s}.stripe_enqueue_meter_periods('{"tokens":"llm_tokens"}', 0)`);
    const a = await pool.connect();
    const b = await pool.connect();
    try {
      await a.query("BEGIN");
      const held = await a.query(`SELECT * FROM ${s}.stripe_claim_meter_events(gen_random_uuid(), 3, 60000)`);
      expect(held.rows).toHaveLength(3);
      await b.query("SET statement_timeout = 2000");
      const other = await b.query<{ user_id: string }>(`SELECT * FROM ${s}.stripe_claim_meter_events(gen_random_uuid(), 100, 60000)`);
      expect(other.rows.map((r) => r.user_id).sort()).toEqual(["u3", "u4"]);
      await a.query("COMMIT");
      // Committed and leased: still not claimable by anyone else until the lease runs out.
      expect((await b.query(`SELECT * FROM ${s}.stripe_claim_meter_events(gen_random_uuid(), 100, 60000)`)).rows).toHaveLength(0);
    } finally {
      await a.query("ROLLBACK").catch(() => {});
      a.release();
      await b.query("RESET statement_timeout").catch(() => {});
      b.release();
    }
  });

  test("a period older than Stripe accepts (35 days) is reported as too old, not sent and not dropped", async () => {
    const [start, end] = closedDay(40);
    await pastUsage("ancient", 50, start, end);
    await linkStripeCustomer(t.meter, "ancient", "cus_ancient");
    const report = await t.meter.syncStripeMeters();
    expect(report.tooOld).toEqual([expect.objectContaining({ userId: "ancient", value: 50, periodEnd: end.toISOString() })]);
    expect(report.needsAttention).toBe(1);
    expect(meterPosts()).toHaveLength(0);
    expect((await outbox()).map((r) => r.status)).toEqual(["too_old"]);
    // Still counted on later runs, so a cron log keeps showing it.
    expect((await t.meter.syncStripeMeters()).needsAttention).toBe(1);
  });

  test("a user without a Stripe customer is reported and sent once one is linked", async () => {
    const [start, end] = closedDay(1);
    await pastUsage("nocus", 12, start, end);
    const first = await t.meter.syncStripeMeters();
    expect(first.failed).toEqual([expect.objectContaining({ userId: "nocus", willRetry: true, error: expect.stringContaining("no linked Stripe customer") })]);
    await linkStripeCustomer(t.meter, "nocus", "cus_late");
    await sleep(1100);
    const second = await t.meter.syncStripeMeters();
    expect(second.sent).toHaveLength(1);
    expect(t.standIn.meterEvents[0]!.payload.stripe_customer_id).toBe("cus_late");
  });

  test("a Stripe 400 fails the period for good until retryFailed re-queues it", async () => {
    await users(1);
    t.standIn.fail({ path: "/v1/billing/meter_events", status: 400 });
    const first = await t.meter.syncStripeMeters();
    expect(first.failed[0]).toMatchObject({ willRetry: false });
    await sleep(1100);
    expect((await t.meter.syncStripeMeters()).sent).toHaveLength(0);
    expect((await t.meter.syncStripeMeters()).needsAttention).toBe(1);
    const retried = await t.meter.syncStripeMeters({ retryFailed: true });
    expect(retried.sent).toHaveLength(1);
    expect(retried.needsAttention).toBe(0);
  });
});

describe("the CLI", () => {
  function cli(args: string[]) {
    const child = spawn(process.execPath, ["--import", "tsx", "src/server/stripe/cli.ts", ...args], {
      cwd: ROOT,
      env: { ...process.env, MK_DATABASE_URL: t.url, MK_STANDIN_PORT: String(t.standIn.port) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c));
    child.stderr.on("data", (c: Buffer) => (stderr += c));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
      child.on("exit", (code, signal) => resolve({ code, signal, stdout, stderr })),
    );
    return { child, exited };
  }

  test("meterkit-sync-meters runs one sync from a config module and prints the report", async () => {
    await users(2);
    const { exited } = cli(["test/stripe/fixtures/sync-meter.config.ts"]);
    const r = await exited;
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ queued: 2, failed: [], tooOld: [] });
    expect(t.standIn.meterEvents).toHaveLength(2);
  }, 60_000);

  test("meterkit-sync-meters exits 2 with the usage on a bad config module", async () => {
    const r = await cli(["test/stripe/fixtures/syncPlans.ts"]).exited;
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("must export");
  }, 60_000);

  test("a sync process killed mid-push loses and doubles nothing: the next run sends what it held, Stripe counts each period once", async () => {
    await users(12);
    // Stripe records each event but the answers never come back: the process dies with work in flight.
    t.standIn.fail({ path: "/v1/billing/meter_events", mode: "accept-then-timeout", times: Infinity });
    const { child, exited } = cli(["test/stripe/fixtures/sync-meter.config.ts", "--lease-ms", "1500"]);
    const deadline = Date.now() + 30_000;
    while (meterPosts().length < 4 && Date.now() < deadline) await sleep(25);
    expect(meterPosts().length).toBeGreaterThanOrEqual(1);
    child.kill("SIGKILL");
    expect((await exited).signal).toBe("SIGKILL");
    const inFlight = (await outbox()).filter((r) => r.status === "sending");
    expect(inFlight.length).toBeGreaterThan(0); // the dead process held these

    t.standIn.clearFailures();
    await sleep(1600); // its lease runs out
    const report = await t.meter.syncStripeMeters();
    expect(report.failed).toEqual([]);
    expect(report.pending).toBe(0);
    expect((await outbox()).every((r) => r.status === "sent")).toBe(true);

    const { posts, counted } = perIdentifier();
    expect(counted.size).toBe(12);
    expect([...counted.values()].every((n) => n === 1)).toBe(true);
    expect([...posts.values()].some((n) => n === 2)).toBe(true); // the killed run's pushes were sent again…
    expect(t.standIn.meterEvents.map((e) => Number(e.payload.value)).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 12 }, (_, i) => 100 + i), // …and every period arrived with its total, once
    );
  }, 60_000);
});
