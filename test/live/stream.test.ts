import pg from "pg";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Usage } from "../../src/core/types.js";
import { createMeterHandler } from "../../src/server/index.js";
import { liveHub, liveStats } from "../../src/server/live/liveHub.js";
import { STREAM_BUFFER_BYTES, createUsageSink } from "../../src/server/live/usageStream.js";
import { testMeter, type TestMeter } from "../helpers/meter.js";
import { SECRET, listen, openSse, waitFor } from "../http/fixtures.js";
import { internalsOf } from "../../src/server/internals.js";

let t: TestMeter;
let srv: Awaited<ReturnType<typeof listen>>;
const USERS = ["ann", "ben", "cat", "dan", "eve"];

beforeAll(async () => {
  t = await testMeter();
  for (const u of USERS) await t.meter.upsertSubscription({ userId: u, planId: "pro" });
  const handler = createMeterHandler<unknown>(t.meter, {
    secretKeys: SECRET,
    identify: (request) => request.headers.get("x-session"),
    live: { heartbeat: 150, retry: 2_500, maxStreamsPerUser: 5 },
  });
  srv = await listen(handler);
});
afterAll(async () => {
  await srv.close();
  await t.cleanup();
});

const stream = (user: string) => openSse(`${srv.url}/usage/stream`, { "x-session": user });
const hub = () => ({ stats: () => liveStats(internalsOf(t.meter)) ?? { streams: 0, users: 0, listening: false, connects: 0 }, open: (u: string, s: AbortSignal) => liveHub(internalsOf(t.meter)).open(u, s) });
const tokens = (u: Usage) => u.counters.find((c) => c.key === "tokens")!;

/** Backends of this test's database sitting in LISTEN. */
async function listeners(): Promise<number> {
  const { rows } = await internalsOf(t.meter).pool.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'meterkit-listen'`,
  );
  return Number(rows[0]!.n);
}

describe("GET /usage/stream", () => {
  test("sends the current Usage at once with a retry: hint, as text/event-stream, no-store", async () => {
    const s = await stream("ann");
    try {
      expect(s.res.status).toBe(200);
      expect(s.res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
      expect(s.res.headers.get("cache-control")).toMatch(/no-store/);
      const first = await s.next();
      expect(first).toEqual(await t.meter.usage("ann"));
      expect(s.raw[0]).toBe("retry: 2500");
    } finally {
      await s.close();
    }
  });

  test("sends a new Usage after every change: reserve, commit, grant", async () => {
    const s = await stream("ben");
    try {
      const start = await s.next();
      const r = await t.meter.reserve("ben", "llm.tokens", 1_000);
      if (!r.allowed) throw new Error("denied");
      expect(tokens(await s.next()).held).toBe(tokens(start).held + 1_000);
      await t.meter.commit(r.reservationId, { actual: 250 });
      const after = await s.next();
      expect(tokens(after)).toMatchObject({ held: tokens(start).held, used: tokens(start).used + 250 });
      await t.meter.grant("ben", "tokens", 5_000);
      expect(tokens(await s.next()).granted).toBe(tokens(after).granted + 5_000);
    } finally {
      await s.close();
    }
  });

  test("a stream only ever carries its own user's usage", async () => {
    const ann = await stream("ann");
    try {
      await ann.next();
      await t.meter.track("cat", "llm.tokens", 7);
      await t.meter.track("ann", "llm.tokens", 3);
      const next = await ann.next();
      expect(next.userId).toBe("ann");
      expect(ann.events.every((e) => e.userId === "ann")).toBe(true);
    } finally {
      await ann.close();
    }
  });

  test("heartbeats keep an idle stream alive", async () => {
    const s = await stream("dan");
    try {
      await s.next();
      await waitFor(() => s.raw.filter((b) => b.startsWith(":")).length >= 2, 2_000);
    } finally {
      await s.close();
    }
  });

  test("a change whose NOTIFY was lost still reaches the stream on the next heartbeat", async () => {
    const s = await stream("cat");
    try {
      const first = await s.next();
      // Written behind the meter's back: no announcement at all.
      await internalsOf(t.meter).pool.query(
        `UPDATE meterkit.subscriptions SET custom_limits = '{"tokens": {"quota": 12345}}', version = nextval('meterkit.entries_id_seq') WHERE user_id = 'cat'`,
      );
      const healed = await s.next(2_000);
      expect(healed.version).toBeGreaterThan(first.version);
      expect(tokens(healed).quota).toBe(12345);
    } finally {
      await s.close();
    }
  });

  test("no identity is 401 and an unknown user 404, and neither opens a stream", async () => {
    const anon = await fetch(`${srv.url}/usage/stream`);
    expect(anon.status).toBe(401);
    const ghost = await fetch(`${srv.url}/usage/stream`, { headers: { "x-session": "ghost" } });
    expect(ghost.status).toBe(404);
    expect(hub().stats().streams).toBe(0);
  });
});

describe("fan-out", () => {
  test("one LISTEN connection serves every stream of the process, and a change reaches all of that user's streams", async () => {
    const streams = await Promise.all(USERS.flatMap((u) => [stream(u), stream(u), stream(u)]));
    try {
      await Promise.all(streams.map((s) => s.next()));
      expect(hub().stats()).toMatchObject({ streams: 15, users: 5 });
      expect(await listeners()).toBe(1);
      await t.meter.track("eve", "llm.tokens", 11);
      const eves = streams.filter((_, i) => USERS[Math.floor(i / 3)] === "eve");
      const got = await Promise.all(eves.map((s) => s.next()));
      for (const u of got) expect(u.userId).toBe("eve");
      expect(new Set(got.map((u) => u.version)).size).toBe(1);
    } finally {
      await Promise.all(streams.map((s) => s.close()));
    }
  });

  test("an idle stream sets off no announcements: the hub's reads are not changes", async () => {
    // Each announcement makes the hub re-read the user for all their streams; a read that
    // announced its user again would keep every open stream's user re-read in a loop, busy
    // for as long as the stream is open, and delay the real changes behind it.
    const listener = new pg.Client({ connectionString: t.url });
    await listener.connect();
    const heard: string[] = [];
    listener.on("notification", (n) => heard.push(n.payload ?? ""));
    const channel = internalsOf(t.meter).channel;
    await listener.query(`LISTEN "${channel}"`);
    /** What was announced before a sentinel (Postgres delivers notifications in commit order). */
    const heardUntilNow = async (): Promise<string[]> => {
      await internalsOf(t.meter).notifier.flush();
      const sentinel = `sentinel_${heard.length}`;
      await listener.query("SELECT pg_notify($1, $2)", [channel, sentinel]);
      await waitFor(() => heard.includes(sentinel));
      return heard.splice(0).slice(0, -1);
    };
    await t.meter.upsertSubscription({ userId: "fay", planId: "pro" });
    const s = await stream("fay");
    try {
      expect(await heardUntilNow()).toContain("fay"); // the subscription
      await s.next();
      // Two heartbeats: each re-reads every watched user.
      await new Promise((r) => setTimeout(r, 400));
      expect(await heardUntilNow()).toEqual([]);
      await t.meter.track("fay", "llm.tokens", 5);
      expect(tokens(await s.next()).used).toBe(5);
      expect(await heardUntilNow()).toEqual(["fay"]); // the change, once; its read adds none
    } finally {
      await s.close();
      await listener.end();
    }
  });

  test("streams are cleaned up when the client goes away", async () => {
    const s = await stream("ann");
    await s.next();
    expect(hub().stats().streams).toBe(1);
    await s.close();
    await waitFor(() => hub().stats().streams === 0);
    expect(hub().stats().users).toBe(0);
  });

  test("a user may hold at most maxStreamsPerUser streams; the next is 429 too_many_requests until one closes", async () => {
    const open = await Promise.all(Array.from({ length: 5 }, () => stream("ben")));
    try {
      await Promise.all(open.map((s) => s.next()));
      const extra = await fetch(`${srv.url}/usage/stream`, { headers: { "x-session": "ben" } });
      expect(extra.status).toBe(429);
      expect(((await extra.json()) as { error: { reason: string } }).error.reason).toBe("too_many_streams");
      // Another user is not affected.
      const other = await stream("cat");
      await other.next();
      await other.close();
      await open.pop()!.close();
      await waitFor(() => hub().stats().streams === 4);
      const again = await stream("ben");
      await again.next();
      open.push(again);
    } finally {
      await Promise.all(open.map((s) => s.close()));
    }
  });

  test("the LISTEN connection reconnects by itself when it is cut, then re-sends current usage", async () => {
    const s = await stream("dan");
    try {
      const first = await s.next();
      const connects = hub().stats().connects;
      await internalsOf(t.meter).pool.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'meterkit-listen'`,
      );
      // The re-send after the reconnect: same usage, sent again.
      const resent = await s.next(5_000);
      expect(resent).toEqual(first);
      expect(hub().stats().connects).toBe(connects + 1);
      await t.meter.track("dan", "llm.tokens", 9);
      expect(tokens(await s.next()).used).toBe(tokens(first).used + 9);
      expect(await listeners()).toBe(1);
    } finally {
      await s.close();
    }
  });
});

describe("a slow client", () => {
  const usage = (version: number): Usage => ({
    userId: "u",
    planId: "p",
    version,
    updatedAt: new Date(0).toISOString(),
    counters: [{ key: "k".repeat(900), label: "l", unit: "tokens", quota: 1, granted: 0, used: version, held: 0, remaining: 0, periodStart: null, periodEnd: null }],
  });

  test("is never buffered for without bound: it skips to the latest Usage", async () => {
    let closed = false;
    const sink = createUsageSink({ userId: "u", retry: 1000, maxStalledBeats: 3, onClose: () => (closed = true) });
    for (let v = 1; v <= 10_000; v++) sink.send(usage(v));
    // Nobody read: what the stream holds is bounded by its buffer plus one pending event.
    const reader = sink.stream.getReader();
    const decoder = new TextDecoder();
    let text = "";
    let bytes = 0;
    for (;;) {
      const { value } = await Promise.race([reader.read(), new Promise<{ value: undefined }>((r) => setTimeout(() => r({ value: undefined }), 50))]);
      if (!value) break;
      bytes += value.byteLength;
      text += decoder.decode(value);
    }
    expect(bytes).toBeLessThan(STREAM_BUFFER_BYTES + 2 * 1_200);
    const versions = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    expect(versions.length).toBeLessThan(30);
    expect(versions.at(-1)).toBe(10_000);
    expect(closed).toBe(false);
  });

  test("that stops reading altogether is dropped after a few heartbeats, and counted until its connection is gone", async () => {
    const ac = new AbortController();
    const body = await hub().open("eve", ac.signal); // opened, never read
    expect(hub().stats().streams).toBe(1);
    // Enough changes to fill its buffer; then the heartbeats find it stalled and drop it.
    for (let i = 0; i < 120; i++) await t.meter.track("eve", "llm.tokens", 1);
    await waitFor(() => hub().stats().users === 0, 5_000);
    // Dropped means errored (the adapter destroys the connection on that), not ended quietly.
    await expect(body.getReader().closed).rejects.toThrow(/stopped reading/);
    // Its connection is still open as far as the hub knows: it keeps its slot in the limits.
    expect(hub().stats().streams).toBe(1);
    ac.abort();
    expect(hub().stats().streams).toBe(0);
  });

  test("a stalled sink reports it on heartbeat until it is dropped", () => {
    let closed = false;
    const sink = createUsageSink({ userId: "u", retry: 1000, maxStalledBeats: 3, onClose: () => (closed = true) });
    expect(sink.heartbeat()).toBe(true); // room: a heartbeat goes out
    for (let v = 1; v <= 100; v++) sink.send(usage(v));
    expect([sink.heartbeat(), sink.heartbeat(), sink.heartbeat()]).toEqual([true, true, false]);
    sink.close(true);
    expect(closed).toBe(true);
  });
});
