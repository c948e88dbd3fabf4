import { internalsOf } from "../../src/server/internals.js";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from "vitest";
import { MeterError } from "../../src/core/errors.js";
import { createMeter, createMeterHandler, type Meter, type MeterHandler } from "../../src/server/index.js";
import { liveStats } from "../../src/server/live/liveHub.js";
import { freshDatabase } from "../helpers/db.js";
import { TEST_PLANS } from "../helpers/meter.js";
import { SECRET, openSse, listen, waitFor } from "../http/fixtures.js";
import { startChaosProxy, type ChaosProxy } from "./harness/chaosProxy.js";
import { countFailures, recordFigures } from "./harness/report.js";

// A partition: a network path that stops answering (packets dropped, not refused). Every call
// must answer `unavailable` within its bound, nothing half-written, and the ledger must resume
// when the network comes back. Small bounds keep the file short.
const BOUNDS = { connect: 1_500, statement: 1_000, close: 1_000 };
/** What a bounded call may take on a loaded 2-core machine: its bound plus the client's grace and scheduling slack. */
const SETTLES_WITHIN = Math.max(BOUNDS.connect, BOUNDS.statement) + 2_000;

let db: Awaited<ReturnType<typeof freshDatabase>>;
let proxy: ChaosProxy;
let meter: Meter;
let handler: MeterHandler<unknown>;
let srv: Awaited<ReturnType<typeof listen>>;
let direct: pg.Pool;
const settled: Record<string, number> = {};
const failures = countFailures(afterEach);

/** How a call ends, and when: never waits more than `cap` ms, so a hang fails the test instead of timing it out. */
async function timed(name: string, call: () => Promise<unknown>, cap = 8_000): Promise<{ ms: number; outcome: unknown }> {
  const started = Date.now();
  const outcome = await Promise.race([
    call().then(
      (v) => v,
      (e: unknown) => e,
    ),
    new Promise((r) => setTimeout(() => r("hung"), cap).unref()),
  ]);
  const ms = Date.now() - started;
  settled[name] = ms;
  return { ms, outcome };
}

const code = (o: unknown) => (o instanceof MeterError ? o.code : o instanceof Response ? o.status : o);

beforeAll(async () => {
  db = await freshDatabase();
  proxy = await startChaosProxy({ port: Number(new URL(db.url).port) });
  const through = new URL(db.url);
  through.port = String(proxy.port);
  meter = createMeter({
    database: through.toString(),
    plans: TEST_PLANS,
    meters: { "llm.tokens": { counter: "tokens" } },
    sweepInterval: 0,
    timeouts: BOUNDS,
  });
  // Set up over a direct connection with the default bounds: the small ones are for the partition.
  const setup = createMeter({ database: db.url, plans: TEST_PLANS, meters: { "llm.tokens": { counter: "tokens" } }, sweepInterval: 0 });
  await setup.migrate();
  await setup.upsertSubscription({ userId: "alice", planId: "pro" });
  await setup.close();
  handler = createMeterHandler<unknown>(meter, {
    secretKeys: SECRET,
    identify: (request) => request.headers.get("x-session"),
    onError: () => {},
    live: { heartbeat: 200 },
  });
  srv = await listen(handler);
  direct = new pg.Pool({ connectionString: db.url, max: 2 });
});
afterAll(async () => {
  recordFigures("black-holed database", { operations: Object.keys(settled).length, violations: failures.n, settledMs: settled });
  await srv?.close();
  await meter?.close();
  await proxy?.close();
  await direct?.end();
  await db?.drop();
});

const entries = async () => Number((await direct.query<{ n: string }>("SELECT count(*) AS n FROM meterkit.entries")).rows[0]!.n);

describe("a database behind a black hole", () => {
  test("every call answers unavailable (503) within its bound, writes nothing, and the ledger resumes when the network heals", async () => {
    // A stream open before the partition: its LISTEN connection goes dark too.
    const before = await openSse(`${srv.url}/usage/stream`, { "x-session": "alice" });
    await before.next();
    // Warm the pool so the calls below meet both kinds of connection: open ones that go silent, and new ones that never connect.
    await Promise.all([meter.usage("alice"), meter.usage("alice"), meter.usage("alice")]);
    const written = await entries();

    // Every ping the hub sends on its LISTEN connection, to check they never overlap (item 9).
    let pingsInFlight = 0;
    let maxPingsInFlight = 0;
    const realQuery = pg.Client.prototype.query;
    const spy = vi.spyOn(pg.Client.prototype, "query").mockImplementation(function (this: pg.Client, ...args: unknown[]) {
      const result = (realQuery as (...a: unknown[]) => unknown).apply(this, args);
      if (args[0] === "SELECT 1" && result instanceof Promise) {
        maxPingsInFlight = Math.max(maxPingsInFlight, ++pingsInFlight);
        result.then(
          () => pingsInFlight--,
          () => pingsInFlight--,
        );
      }
      return result as never;
    });

    expect(proxy.blackHole()).toBeGreaterThan(0);
    const server = (path: string, body: unknown, key: string) =>
      handler(
        new Request("http://app.test" + path, {
          method: "POST",
          headers: { authorization: `Bearer ${SECRET}`, "content-type": "application/json", "idempotency-key": key },
          body: JSON.stringify(body),
        }),
      );
    const calls = await Promise.all([
      timed("reserve", () => meter.reserve("alice", "llm.tokens", 100)),
      timed("usage", () => meter.usage("alice")),
      timed("track", () => meter.track("alice", "llm.tokens", 7)),
      timed("POST /v1/reservations", () => server("/v1/reservations", { userId: "alice", meterKey: "llm.tokens", amount: 100 }, "bh-1")),
      timed("GET /usage", () => handler(new Request("http://app.test/usage", { headers: { "x-session": "alice" } }))),
      timed("GET /usage/stream (new)", () => handler(new Request("http://app.test/usage/stream", { headers: { "x-session": "alice" } }))),
    ]);
    const [reserve, usage, track, postReserve, getUsage, newStream] = calls;
    expect(code(reserve!.outcome)).toBe("unavailable");
    expect(code(usage!.outcome)).toBe("unavailable");
    expect(code(track!.outcome)).toBe("unavailable");
    expect(code(postReserve!.outcome)).toBe(503);
    expect(code(getUsage!.outcome)).toBe(503);
    expect(code(newStream!.outcome)).toBe(503);
    for (const c of calls) expect(c.ms).toBeLessThan(SETTLES_WITHIN);
    expect(((await (postReserve!.outcome as Response).json()) as { error: { code: string } }).error.code).toBe("unavailable");

    // Several heartbeats pass over the dark LISTEN connection: never two pings at once.
    await new Promise((r) => setTimeout(r, 1_200));
    spy.mockRestore();
    expect(maxPingsInFlight).toBe(1);

    // Nothing half-written: the partition wrote no entry.
    expect(await entries()).toBe(written);

    proxy.heal();
    // The ledger resumes: the same meter, the same idempotency key, the live stream again.
    await waitFor(async () => (await meter.usage("alice").then(() => true, () => false)), 10_000);
    const r = await meter.reserve("alice", "llm.tokens", 100);
    expect(r.allowed).toBe(true);
    const again = await server("/v1/reservations", { userId: "alice", meterKey: "llm.tokens", amount: 100 }, "bh-1");
    expect(again.status).toBe(200);
    await waitFor(() => liveStats(internalsOf(meter))?.listening === true, 10_000);
    const after = await openSse(`${srv.url}/usage/stream`, { "x-session": "alice" });
    expect((await after.next()).userId).toBe("alice");
    await after.close();
    await before.close();
    expect(await meter.audit()).toEqual([]);
  });

  test("meter.close() settles within its bound while the network is dark", async () => {
    const s = await openSse(`${srv.url}/usage/stream`, { "x-session": "alice" });
    await s.next();
    await meter.usage("alice");
    proxy.blackHole();
    // Calls in flight on the dark network, and a change queued for NOTIFY: close() waits for none of them past its bound.
    const inFlight = [meter.usage("alice"), meter.track("alice", "llm.tokens", 1)].map((p) => p.then(() => "answered", (e: unknown) => code(e)));
    await new Promise((r) => setTimeout(r, 50));
    const closing = await timed("meter.close()", () => meter.close());
    expect(closing.outcome).toBeUndefined();
    expect(closing.ms).toBeGreaterThanOrEqual(BOUNDS.close - 100);
    expect(closing.ms).toBeLessThan(BOUNDS.close + 1_000);
    expect(await Promise.all(inFlight)).toEqual(["unavailable", "unavailable"]);
    // A closed meter answers unavailable at once, never hangs.
    const late = await timed("usage after close", () => meter.usage("alice"));
    expect(code(late.outcome)).toBe("unavailable");
    expect(late.ms).toBeLessThan(500);
    await s.close();
    proxy.heal();
    // Nothing the partition touched is half-written.
    const check = createMeter({ database: db.url, plans: TEST_PLANS, meters: { "llm.tokens": { counter: "tokens" } }, sweepInterval: 0 });
    try {
      expect(await check.audit()).toEqual([]);
    } finally {
      await check.close();
    }
  });
});

describe("an app's own pg.Pool behind a black hole", () => {
  test("meterkit still bounds each of its calls (connect and statement) and leaves the app's pool usable", async () => {
    const through = new URL(db.url);
    through.port = String(proxy.port);
    // The app's pool has no timeouts at all: only meterkit's per-call bounds stand between it and a hang.
    const appPool = new pg.Pool({ connectionString: through.toString(), max: 2 });
    appPool.on("error", () => {});
    const m = createMeter({ database: appPool, plans: TEST_PLANS, meters: { "llm.tokens": { counter: "tokens" } }, sweepInterval: 0, timeouts: BOUNDS });
    try {
      await m.usage("alice");
      proxy.blackHole();
      const [open, fresh] = await Promise.all([
        // the pooled connection goes silent mid-statement
        timed("app pool: usage", () => m.usage("alice")),
        // the second connection never gets past the handshake
        timed("app pool: reserve", () => m.reserve("alice", "llm.tokens", 5)),
      ]);
      expect([code(open!.outcome), code(fresh!.outcome)]).toEqual(["unavailable", "unavailable"]);
      expect(open!.ms).toBeLessThan(SETTLES_WITHIN);
      expect(fresh!.ms).toBeLessThan(SETTLES_WITHIN);
      proxy.heal();
      await waitFor(async () => (await m.usage("alice").then(() => true, () => false)), 10_000);
    } finally {
      proxy.heal();
      await m.close();
      await appPool.end();
    }
  });
});
