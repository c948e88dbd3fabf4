// The guards of auto top-up, each with a test that fails without it (see docs/auto-top-up.md,
// "What keeps it to one charge"): the settings row lock taken before usage is read, the unique
// "one charge in flight" index, the per-period ceiling, and the outbox lease that lets a
// restarted process finish a charge a killed one started.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterEach, describe, expect, test } from "vitest";
import { internalsOf } from "../../src/server/internals.js";
import type { Meter } from "../../src/server/index.js";
import { PLANS, topUpTest, type TopUpTest } from "./autoTopUpHelpers.js";
import { PACKS, WEBHOOK_SECRET } from "./helpers.js";

let t: TopUpTest;
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await t?.cleanup();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/**
 * `n` app servers on the test's database, each with `conns`
 * connections already open: a cold pool connects one socket at a time, which would quietly
 * serialise the "concurrent" statements below.
 */
async function appServers(n: number, conns = 12): Promise<Meter[]> {
  // A loaded CI machine can take seconds to start 100 backends: a patient connect timeout.
  const meters = Array.from({ length: n }, () => t.another({ poolSize: conns, timeouts: { connect: 30_000, statement: 60_000 } }));
  await Promise.all(meters.map((m) => Promise.all(Array.from({ length: conns }, () => internalsOf(m).pool.query("SELECT 1")))));
  return meters;
}

/**
 * One request's reservation and commit of `amount` on server `m`. 64 of them queue on one
 * user's lock; on a loaded machine one may wait past the lock timeout and answer
 * `unavailable`, which a client retries, as this does.
 */
async function spendOn(m: Meter, userId: string, amount: number): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      const r = await m.reserve(userId, "llm.tokens", amount);
      if (!r.allowed) throw new Error("limit reached");
      await m.commit(r.reservationId, { actual: amount });
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== "unavailable" || attempt === 5) throw err;
    }
  }
}

/** Runs `fn(i)` for every i < n, all released at the same tick (a barrier), and waits for all. */
async function together<T>(n: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const all = Promise.all(Array.from({ length: n }, async (_, i) => (await gate, fn(i))));
  release();
  return all;
}

/**
 * Runs `observers` (each resolves after one `autoTopUp.observe`) while a transaction of the test
 * holds the user's auto top-up settings row, as a concurrent observer or settings change does;
 * once every observer has either finished or is queued behind that row, lets them all go at
 * once. This is the barrier that makes 64 observers race for real: released one by one by
 * their own round trips they would rarely overlap, and a race that never happens proves nothing.
 */
async function behindTheRow(userId: string, observers: number, start: (observed: () => void) => Promise<unknown>): Promise<void> {
  const { schema } = internalsOf(t.meter);
  // Its own connections: the app servers' pools are busy with the observers.
  const pool = new pg.Pool({ connectionString: t.url, max: 2 });
  const x = await pool.connect();
  let finished = 0;
  try {
    await x.query("BEGIN");
    await x.query(`SELECT 1 FROM ${schema}.auto_top_up WHERE user_id = $1 FOR UPDATE`, [userId]);
    const work = start(() => finished++);
    await until(`${observers} observers to finish or queue behind the row`, async () => {
      const { rows } = await pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%auto_top_up_observe%'`,
      );
      return finished + rows[0]!.n >= observers;
    }, 60_000);
    await x.query("COMMIT");
    await work;
  } finally {
    x.release();
    await pool.end();
  }
}

/** Armed charges of `userId` as the database holds them (the outbox rows). */
async function armed(userId: string): Promise<Array<{ status: string }>> {
  const { pool, schema } = internalsOf(t.meter);
  return (await pool.query<{ status: string }>(`SELECT status FROM ${schema}.auto_top_up_charges WHERE user_id = $1 ORDER BY created_at`, [userId])).rows;
}

// A top-up of the starter pack (10 000 credits) does not lift these users back above the
// threshold, so only the trigger state says whether a crossing was already served.
const DEEP = { counter: "tokens", enabled: true, packId: "starter", threshold: 18_200, maxPerPeriod: 5000 };

describe("one charge per crossing", () => {
  test("64 concurrent reservations on eight app servers, released at once across the threshold, each observed, arm exactly one charge (3 rounds)", async () => {
    t = await topUpTest();
    const servers = await appServers(8);
    for (let round = 0; round < 3; round++) {
      const user = `storm${round}`;
      await t.saveCard(user);
      await t.meter.grant(user, "tokens", 30_000, { idempotencyKey: `promo-${user}` }); // 31 000 left
      await t.meter.autoTopUp.set(user, DEEP);
      const before = t.charges().length;
      // 64 × 400: the 33rd commit crosses 18 200. Each request's server observes right after
      // its commit (the worst case: 64 observers, most of them at the same moment).
      await behindTheRow(user, 64, (observed) =>
        together(64, async (i) => {
          const m = servers[i % servers.length]!;
          await spendOn(m, user, 400);
          await m.autoTopUp.observe(user);
          observed();
        }),
      );
      await Promise.all(servers.map((m) => m.autoTopUp.flush()));
      // Every server works the outbox and re-observes at once, twice.
      for (let pass = 0; pass < 2; pass++) {
        await Promise.all(servers.map((m) => m.autoTopUp.run()));
        await t.relay();
        await together(servers.length, (i) => servers[i]!.autoTopUp.observe(user));
      }
      expect(t.charges().length - before, `round ${round}`).toBe(1);
      expect(await t.remaining(user)).toBe(31_000 - 64 * 400 + 10_000);
    }
  }, 120_000);

  test("an observer that read the trigger state before another server armed and completed a top-up arms nothing more", async () => {
    // The interleaving is forced with the lock itself, not with sleeps: a test transaction
    // holds the user's settings row as a running observer would, server B's observer starts
    // and waits, then the transaction arms a top-up and completes it before letting B go.
    // With the row lock B reads the state after that and sees the crossing served; without
    // it B has read the state before, and arms a second top-up for the same crossing.
    t = await topUpTest();
    const [b] = await appServers(1, 2);
    const { pool, schema } = internalsOf(t.meter);
    await t.saveCard("lee");
    await t.meter.grant("lee", "tokens", 30_000, { idempotencyKey: "promo-lee" });
    await t.meter.autoTopUp.set("lee", DEEP);
    // The grant's own observation runs in the background (after commit, off the hot path): let
    // it finish now, above the threshold, or on a loaded machine it runs after the drop below
    // and arms the top-up this test's transaction is to arm (CI saw it once).
    await t.meter.autoTopUp.flush();
    // The drop, in a process without auto top-up: nobody has observed it yet.
    const quiet = t.another({ autoTopUp: undefined });
    const r = await quiet.reserve("lee", "llm.tokens", 13_000);
    if (!r.allowed) throw new Error("limit reached");
    await quiet.commit(r.reservationId, { actual: 13_000 }); // 18 000 left: below
    const x = await pool.connect();
    try {
      await x.query("BEGIN");
      await x.query(`SELECT 1 FROM ${schema}.auto_top_up WHERE user_id = 'lee' FOR UPDATE`);
      const late = b!.autoTopUp.observe("lee");
      await until("server B's observer to wait on a lock", async () => {
        const { rows } = await pool.query(
          `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%auto_top_up_observe%'`,
        );
        return rows.length > 0;
      });
      const packs = JSON.stringify({ starter: { credits: 10_000, amount: 500, currency: "usd", counter: "tokens" } });
      const { rows } = await x.query<{ r: Array<{ id?: string }> }>(`SELECT ${schema}.auto_top_up_observe('lee', $1::jsonb) AS r`, [packs]);
      const id = rows[0]!.r.find((c) => c.id)!.id;
      await x.query(`SELECT ${schema}.auto_top_up_succeed($1, 'pi_elsewhere', false)`, [id]);
      await x.query("COMMIT");
      await late;
    } finally {
      x.release();
    }
    expect(await armed("lee")).toEqual([{ status: "succeeded" }]);
    expect((await t.meter.autoTopUp.get("lee")).counters[0]).toMatchObject({ inFlight: false, spentThisPeriod: 500 });
  });

  test("a second crossing while the first top-up is still in flight arms nothing: one charge in flight per user and counter", async () => {
    t = await topUpTest();
    await t.saveCard("ivy");
    await t.meter.autoTopUp.set("ivy", { counter: "tokens", enabled: true, packId: "starter", threshold: 500, maxPerPeriod: 5000 });
    const spendAndObserve = async (n: number) => {
      const r = await t.meter.reserve("ivy", "llm.tokens", n);
      if (!r.allowed) throw new Error("limit reached");
      await t.meter.commit(r.reservationId, { actual: n });
      await t.meter.autoTopUp.observe("ivy");
    };
    await spendAndObserve(600); // 400: crossed, a top-up armed (not charged yet)
    await t.meter.grant("ivy", "tokens", 1000, { idempotencyKey: "gift-ivy" }); // 1 400: above
    await t.meter.autoTopUp.observe("ivy");
    await spendAndObserve(1000); // 400: crossed again while the first is in flight
    expect(await armed("ivy")).toEqual([{ status: "pending" }]);
    await t.meter.autoTopUp.run();
    await t.relay();
    expect(t.charges()).toHaveLength(1);
    expect(await t.remaining("ivy")).toBe(400 + 10_000);
  });

  test("64 concurrent observers of one crossing, on eight app servers, released at once, arm one charge", async () => {
    t = await topUpTest();
    const servers = await appServers(8);
    await t.saveCard("dot");
    await t.meter.autoTopUp.set("dot", { ...DEEP, threshold: 500 });
    const quiet = t.another({ autoTopUp: undefined });
    const r = await quiet.reserve("dot", "llm.tokens", 600);
    if (!r.allowed) throw new Error("limit reached");
    await quiet.commit(r.reservationId, { actual: 600 });
    await behindTheRow("dot", 64, (observed) => together(64, (i) => servers[i % servers.length]!.autoTopUp.observe("dot").then(observed)));
    expect(await armed("dot")).toEqual([{ status: "pending" }]);
    await Promise.all(servers.map((m) => m.autoTopUp.run()));
    expect(t.charges()).toHaveLength(1);
    expect(await t.remaining("dot")).toBe(400 + 10_000);
  });
});

describe("the ceiling", () => {
  test("64 concurrent reservations crossing again and again never charge past the per-period ceiling", async () => {
    t = await topUpTest();
    const servers = await appServers(8);
    await t.saveCard("max");
    // Two packs a period; each top-up lifts remaining above the threshold, so every burst crosses anew.
    await t.meter.autoTopUp.set("max", { counter: "tokens", enabled: true, packId: "starter", threshold: 500, maxPerPeriod: 1000 });
    for (let burst = 0; burst < 3; burst++) {
      await t.meter.grant("max", "tokens", 6400, { idempotencyKey: `lift-${burst}` }); // above again
      const left = (await t.remaining("max"))!;
      const each = Math.floor((left - 100) / 64);
      await behindTheRow("max", 64, (observed) =>
        together(64, async (i) => {
          const m = servers[i % servers.length]!;
          await spendOn(m, "max", each);
          await m.autoTopUp.observe("max");
          observed();
        }),
      );
      await Promise.all(servers.map((m) => m.autoTopUp.run()));
      await t.relay();
    }
    expect(t.charges()).toHaveLength(2);
    expect((await t.meter.autoTopUp.get("max")).counters[0]).toMatchObject({ spentThisPeriod: 1000, inFlight: false, status: "active" });
  }, 120_000);
});

describe("process death", () => {
  test("a server killed (SIGKILL) after Stripe took the charge and before the grant: the restarted server credits it once", async () => {
    t = await topUpTest();
    await t.saveCard("kit");
    await t.meter.autoTopUp.set("kit", { counter: "tokens", enabled: true, packId: "starter", threshold: 500, maxPerPeriod: 5000 });
    const script = fileURLToPath(new URL("./autoTopUpWorkerProcess.ts", import.meta.url));
    const start = () => {
      const child = spawn(process.execPath, ["--import", "tsx", script], {
        env: {
          ...process.env,
          DATABASE_URL: t.url,
          STRIPE_PORT: String(t.standIn.port),
          PLANS: JSON.stringify(PLANS),
          PACKS: JSON.stringify(PACKS),
          WEBHOOK_SECRET,
          LEASE_MS: "1500",
        },
        stdio: ["ignore", "pipe", "inherit"],
      });
      children.push(child);
      return new Promise<ChildProcess>((resolve, reject) => {
        child.stdout!.once("data", () => resolve(child));
        child.once("exit", (code) => reject(new Error(`the worker process exited with ${code}`)));
      });
    };
    // Stripe takes the charge; the answer never reaches the server.
    t.standIn.fail({ path: "/v1/payment_intents", mode: "accept-then-timeout" });
    const first = await start();
    const r = await t.meter.reserve("kit", "llm.tokens", 600);
    if (!r.allowed) throw new Error("limit reached");
    await t.meter.commit(r.reservationId, { actual: 600 }); // 400 left: armed by this server's observer
    await until("Stripe to take the charge", () => t.standIn.paymentIntents.size === 1);
    first.kill("SIGKILL");
    await new Promise((r) => first.once("exit", r));
    expect(await t.remaining("kit")).toBe(400); // charged at Stripe, not credited
    expect(await armed("kit")).toEqual([{ status: "sending" }]);
    // The restart: a new process on the same database takes the row over once the lease runs
    // out and replays the charge with the same idempotency key.
    t.standIn.clearFailures();
    await start();
    await until("the restarted server to credit the top-up", async () => (await t.remaining("kit")) === 10_400);
    await t.relay(); // payment_intent.succeeded of the same charge: a duplicate
    await sleep(300); // a further worker pass or two
    expect(await t.remaining("kit")).toBe(400 + 10_000);
    expect(await armed("kit")).toEqual([{ status: "succeeded" }]);
    expect(t.standIn.paymentIntents.size).toBe(1);
    const keys = t.charges().map((c) => c.idempotencyKey);
    expect(keys).toHaveLength(2);
    expect(new Set(keys).size).toBe(1);
    expect(await t.meter.audit("kit")).toEqual([]);
  }, 60_000);
});
