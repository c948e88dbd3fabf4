import pg from "pg";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { MeterError } from "../../src/core/errors.js";
import { createMeter, type CreateMeterOptions, type Meter } from "../../src/server/index.js";
import { internalsOf } from "../../src/server/internals.js";
import { reservationUser } from "../../src/server/ledger/reservationId.js";
import { batchOps, type BatchOp } from "../helpers/batchOps.js";
import { freshDatabase } from "../helpers/db.js";

const PLANS: CreateMeterOptions["plans"] = {
  basic: {
    limits: {
      tokens: { quota: 1_000_000, period: "month" },
      tokens_out: { quota: 1_000_000, period: "month" },
      images: { quota: 5, period: "day", overage: "reject" },
    },
  },
};

let db: { url: string; drop: () => Promise<void> };
const closers: Array<() => Promise<void>> = [];

/** A meter on the test database whose pool records every SQL text it sends. */
function recordedMeter(options: Partial<CreateMeterOptions> = {}, max = 8): { meter: Meter; sent: string[] } {
  const sent: string[] = [];
  const pool = new pg.Pool({ connectionString: db.url, max });
  pool.on("error", () => {});
  pool.on("connect", (client) => {
    const c = client as unknown as { query: (...args: unknown[]) => unknown };
    const original = c.query.bind(client);
    c.query = (...args: unknown[]) => {
      const q = args[0];
      sent.push(typeof q === "string" ? q : String((q as { text?: unknown }).text));
      return original(...args);
    };
  });
  const meter = createMeter({ database: pool, plans: PLANS, defaultPlan: "basic", sweepInterval: 0, ...options });
  closers.push(async () => {
    await meter.close();
    await pool.end();
  });
  return { meter, sent };
}

/** One operation of an op_batch call, as the batcher sends it. */

/**
 * Watches a meter's op_batch calls: the size of each, and the most in flight at once; `onSend`
 * sees each batch's operations as it leaves, and what it returns runs when the batch answers.
 * Opens two connections first (opening one mid-run would delay a second batch).
 */
async function watchBatches(meter: Meter, onSend?: (ops: BatchOp[]) => (() => void) | void): Promise<{ sizes: number[]; most: number; reset(): void }> {
  const pool = internalsOf(meter).pool;
  let inFlight = 0;
  const seen = {
    sizes: [] as number[],
    most: 0,
    reset() {
      seen.sizes.length = 0;
      seen.most = 0;
    },
  };
  pool.on("connect", (client) => {
    const c = client as unknown as { query: (...args: unknown[]) => Promise<unknown> };
    const original = c.query.bind(client);
    c.query = (...args: unknown[]) => {
      const ops = batchOps(args);
      if (!ops) return original(...args);
      seen.sizes.push(ops.length);
      seen.most = Math.max(seen.most, ++inFlight);
      const answered = onSend?.(ops);
      return original(...args).finally(() => {
        inFlight--;
        answered?.();
      });
    };
  });
  await Promise.all([pool.query("SELECT pg_sleep(0.05)"), pool.query("SELECT pg_sleep(0.05)")]);
  return seen;
}

const errorOf = (p: Promise<unknown>) =>
  p.then(
    (r) => ({ ok: r }),
    (e: unknown) => (e instanceof MeterError ? { code: e.code, message: e.message, details: e.details } : { thrown: String(e) }),
  );

beforeAll(async () => {
  db = await freshDatabase();
  const m = createMeter({ database: db.url, plans: PLANS, defaultPlan: "basic", sweepInterval: 0 });
  await m.migrate();
  await m.close();
});
afterAll(async () => {
  for (const c of closers.splice(0)) await c();
  await db.drop();
});

describe("the batched path", () => {
  test("createMeter refuses a batch option that is not a boolean or sane { maxSize, concurrency }", () => {
    const make = (batch: unknown) => () => createMeter({ database: db.url, plans: PLANS, sweepInterval: 0, batch: batch as CreateMeterOptions["batch"] });
    for (const bad of [{ maxSize: 0 }, { concurrency: 1.5 }, { maxSize: 20_000 }, "yes", null]) {
      expect(make(bad)).toThrow(expect.objectContaining({ code: "invalid_request" }));
    }
  });

  test("a lone call on an idle meter leaves at once as the plain statement (no batch, no timer)", async () => {
    const { meter, sent } = recordedMeter({ batch: true });
    await meter.usage("lone"); // config sync and a first connection out of the way
    sent.length = 0;
    const r = await meter.reserve("lone", "tokens", 10);
    expect(r.allowed).toBe(true);
    expect(sent.filter((s) => s.includes("op_"))).toEqual([expect.stringContaining(".op_reserve(")]);
  });

  test("calls that arrive while one is in flight go out together as one SQL call in one transaction", async () => {
    const { meter, sent } = recordedMeter({ batch: true });
    await meter.usage("b0");
    sent.length = 0;
    const users = Array.from({ length: 12 }, (_, i) => `one-tx-${i}`);
    const results = await Promise.all(users.map((u) => meter.reserve(u, "tokens", 100)));
    expect(results.every((r) => r.allowed)).toBe(true);
    const calls = sent.filter((s) => s.includes("op_"));
    // The first leaves alone; the eleven that queued behind it share one op_batch call.
    expect(calls).toHaveLength(2);
    expect(calls[0]).toContain(".op_reserve(");
    expect(calls[1]).toContain(".op_batch(");
    // One transaction: every entry the batch wrote carries the same transaction start time.
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    const { rows } = await c.query<{ n: string }>(
      "SELECT count(DISTINCT created_at) AS n FROM meterkit.entries WHERE user_id = ANY($1) AND user_id <> $2",
      [users, users[0]],
    );
    await c.end();
    expect(Number(rows[0]!.n)).toBe(1);
  });

  test("callers that call again as soon as their batch answers ride the next batch together, not one of them alone ahead of the rest", async () => {
    const { meter, sent } = recordedMeter({ batch: true });
    await meter.usage("cohort-0");
    sent.length = 0;
    // Twelve callers in a loop of reserve then commit, as an API server under load runs them.
    await Promise.all(
      Array.from({ length: 12 }, async (_, w) => {
        for (let i = 0; i < 4; i++) {
          const r = await meter.reserve(`cohort-${w}`, "tokens", 100);
          if (!r.allowed) throw new Error("reserve denied");
          await meter.commit(r.reservationId, { actual: 40 });
        }
      }),
    );
    const calls = sent.filter((s) => s.includes("op_"));
    // Only the very first call leaves alone (the meter was idle); after that every batch carries
    // all twelve callers (it used to alternate: the first caller back alone, then the other eleven).
    expect(calls.filter((s) => !s.includes(".op_batch("))).toHaveLength(1);
    expect(calls.length).toBeLessThanOrEqual(9);
    for (let w = 0; w < 12; w++) expect(await meter.audit(`cohort-${w}`)).toEqual([]);
  });

  test("a second batch goes in flight beside the first only when both carry a quarter of maxSize or more", { timeout: 60_000 }, async () => {
    const { meter } = recordedMeter({ batch: { concurrency: 2, maxSize: 32 } }, 6);
    const batches = await watchBatches(meter);
    const load = async (callers: number) => {
      batches.reset();
      await Promise.all(
        Array.from({ length: callers }, async (_, w) => {
          for (let i = 0; i < 10; i++) {
            const r = await meter.reserve(`share-${callers}-${w}`, "tokens", 10);
            if (!r.allowed) throw new Error("reserve denied");
            await meter.commit(r.reservationId, { actual: 5 });
          }
        }),
      );
      return { most: batches.most, sizes: [...batches.sizes] };
    };
    // 6 callers: two batches of 3 would each pay a commit; they ride one batch, one at a time.
    const few = await load(6);
    expect(few.most).toBe(1);
    expect(Math.max(...few.sizes)).toBe(6);
    // 32 callers: two batches of about 16 (≥ 8 = 32 / 4) go in flight side by side.
    const many = await load(32);
    expect(many.most).toBe(2);
    for (const w of [6, 32]) for (let i = 0; i < w; i++) expect(await meter.audit(`share-${w}-${i}`)).toEqual([]);
  });

  test("on one hot user a batch is not cut to its share of the queue when no batch could go beside it", { timeout: 60_000 }, async () => {
    // With concurrency 2 the queue is shared between two batches in flight; but beside a batch
    // holding the hot user only calls of other users may go, and there are none: cutting the
    // batch to half the queue only halved the batch (25 % fewer pairs/s than concurrency 1).
    const { meter } = recordedMeter({ batch: { concurrency: 2, maxSize: 32 } }, 6);
    const batches = await watchBatches(meter);
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (let i = 0; i < 10; i++) {
          const r = await meter.reserve("share-hot", "tokens", 10);
          if (!r.allowed) throw new Error("reserve denied");
          await meter.commit(r.reservationId, { actual: 5 });
        }
      }),
    );
    expect(batches.most).toBe(1);
    const sizes = [...batches.sizes].sort((a, b) => a - b);
    // The callers come back together: most batches carry (nearly) all 32 of them.
    expect(sizes[Math.floor(sizes.length / 2)]).toBeGreaterThan(16);
    expect((await meter.usage("share-hot")).counters.find((c) => c.key === "tokens")).toMatchObject({ used: 32 * 10 * 5, held: 0 });
    expect(await meter.audit("share-hot")).toEqual([]);
  });

  test("batches in flight side by side never share a user: a hot user's calls wait for the batch that holds it", { timeout: 60_000 }, async () => {
    const { meter } = recordedMeter({ batch: { concurrency: 2, maxSize: 32 } }, 6);
    /** The users of each op_batch call in flight, and every overlap seen between two of them. */
    const flying = new Set<Set<string | null>>();
    const overlaps: Array<string | null> = [];
    const userOf = (op: BatchOp) => (op.fn.startsWith("op_resolve") ? reservationUser(String(op.args[0])) : String(op.args[0]));
    const batches = await watchBatches(meter, (ops) => {
      const users = new Set(ops.map(userOf));
      for (const other of flying) for (const u of users) if (other.has(u)) overlaps.push(u);
      flying.add(users);
      return () => flying.delete(users);
    });
    // 16 callers on one hot user beside 32 callers on users of their own.
    await Promise.all(
      Array.from({ length: 48 }, async (_, w) => {
        const user = w < 16 ? "disjoint-hot" : `disjoint-${w}`;
        for (let i = 0; i < 8; i++) {
          const r = await meter.reserve(user, "tokens", 10);
          if (!r.allowed) throw new Error("reserve denied");
          await meter.commit(r.reservationId, { actual: 5 });
        }
      }),
    );
    // Two batches did fly side by side (or this test proves nothing), never on the same user.
    expect(batches.most).toBe(2);
    expect(overlaps).toEqual([]);
    expect((await meter.usage("disjoint-hot")).counters.find((c) => c.key === "tokens")).toMatchObject({ used: 16 * 8 * 5, held: 0 });
    for (const w of ["disjoint-hot", ...Array.from({ length: 32 }, (_, i) => `disjoint-${i + 16}`)]) expect(await meter.audit(w)).toEqual([]);
  });

  test("a call the batcher cannot place by user (an unrouted id) is not starved by batches that keep going beside each other", { timeout: 60_000 }, async () => {
    // A batch beside another takes only calls of users no batch in flight holds, and a call
    // whose user only the database knows (an unrouted reservation id: a user id too long to fit
    // in one) only goes when no batch is in flight. Under steady load from many users two
    // batches always overlap: the call must not wait for the load to stop.
    const { meter } = recordedMeter({ batch: { concurrency: 3, maxSize: 16 } }, 6);
    const longUser = `starve-${"x".repeat(230)}`;
    const held = await meter.reserve(longUser, "tokens", 10);
    if (!held.allowed) throw new Error("reserve denied");
    expect(held.reservationId).not.toContain(longUser); // unrouted
    let sentSince = -1;
    const batches = await watchBatches(meter, () => {
      if (sentSince >= 0) sentSince++;
    });
    let answeredAfter = -1;
    let loadDone = false;
    const load = Promise.all(
      Array.from({ length: 48 }, async (_, w) => {
        for (let i = 0; i < 60 && answeredAfter < 0; i++) {
          const r = await meter.reserve(`starve-${w}`, "tokens", 10);
          if (!r.allowed) throw new Error("reserve denied");
          await meter.commit(r.reservationId, { actual: 5 });
        }
      }),
    ).then(() => {
      loadDone = true;
    });
    // Let the load settle into two batches in flight, then commit the unrouted hold.
    while (batches.sizes.length < 10) await new Promise((r) => setTimeout(r, 1));
    sentSince = 0;
    const done = await meter.commit(held.reservationId, { actual: 7 });
    answeredAfter = sentSince;
    const loadRanOn = !loadDone;
    await load;
    expect(done).toMatchObject({ status: "committed", committed: 7 });
    expect(batches.most).toBeGreaterThanOrEqual(2);
    // Answered while the load still ran, within a few batches of being sent.
    expect(loadRanOn).toBe(true);
    expect(answeredAfter).toBeLessThanOrEqual(5);
    expect(await meter.audit(longUser)).toEqual([]);
  });

  test("batches of several meters (processes) on one hot user serialise on its lock: no deadlock, every answer and the balance right, audit clean", { timeout: 60_000 }, async () => {
    const meters = [recordedMeter({ batch: { concurrency: 3, maxSize: 8 } }, 6), recordedMeter({ batch: { concurrency: 3, maxSize: 8 } }, 6)];
    // How many op_batch calls were in flight at once, over both meters (at least two, or this
    // test proves nothing), and in one meter (one: its batches never share a user).
    let inFlight = 0;
    let most = 0;
    const watched = await Promise.all(
      meters.map(({ meter }) =>
        watchBatches(meter, () => {
          most = Math.max(most, ++inFlight);
          return () => inFlight--;
        }),
      ),
    );
    const meter = meters[0]!.meter;
    // Rounds on a fresh hot user each until the two meters' batches did overlap (under a busy
    // machine one round may happen to alternate them); each round is checked in full.
    for (let round = 0; round < 5 && most < 2; round++) {
      const user = `hot-many-${round}`;
      await meter.upsertSubscription({ userId: user, planId: "basic", customLimits: { tokens: { quota: 4_000 } } });
      const answers: Array<{ allowed: boolean; committed?: number; released?: number }> = [];
      const failures: unknown[] = [];
      await Promise.all(
        Array.from({ length: 24 }, async (_, w) => {
          const m = meters[w % 2]!.meter;
          for (let i = 0; i < 4; i++) {
            try {
              const r = await m.reserve(user, "tokens", 100);
              if (!r.allowed) {
                answers.push({ allowed: false });
                continue;
              }
              if ((w + i) % 4 === 0) answers.push({ allowed: true, released: (await m.release(r.reservationId)).released });
              else answers.push({ allowed: true, committed: (await m.commit(r.reservationId, { actual: 70 })).committed });
            } catch (err) {
              failures.push(err);
            }
          }
        }),
      );
      expect(failures).toEqual([]);
      expect(watched.map((w) => w.most)).toEqual([1, 1]);
      expect(answers).toHaveLength(96);
      const committed = answers.filter((a) => a.committed !== undefined);
      expect(committed.every((a) => a.committed === 70)).toBe(true);
      expect(answers.filter((a) => a.released !== undefined).every((a) => a.released === 100)).toBe(true);
      // 96 × 70 would pass the quota: the last reserves are denied, never an over-spend.
      expect(answers.some((a) => !a.allowed)).toBe(true);
      const tokens = (await meter.usage(user)).counters.find((c) => c.key === "tokens")!;
      expect(tokens.used).toBe(70 * committed.length);
      expect(tokens.used).toBeLessThanOrEqual(4_000);
      expect(tokens.held).toBe(0);
      expect(await meter.audit(user)).toEqual([]);
    }
    expect(most).toBeGreaterThanOrEqual(2);
  });

  test("one bad operation in a batch leaves every other result intact, each answering as it would unbatched", async () => {
    const { meter: plain } = recordedMeter();
    const { meter: batched, sent } = recordedMeter({ batch: true });
    // The unbatched meter runs the calls one after another; the batched one gets them all at
    // once and runs them in arrival order in one batch (after the first, which leaves alone).
    const run = async (m: Meter, u: string, together: boolean) => {
      const held = await m.reserve(u, "tokens", 500);
      if (!held.allowed) throw new Error("setup reserve denied");
      await m.commit(held.reservationId, { actual: 10 });
      await m.track(u, "images", 5);
      sent.length = 0;
      const calls = [
        () => m.reserve(u, "tokens", 100),
        () => m.commit("rsv_does_not_exist", { actual: 1 }),
        () => m.track(u, "images", 1), // limit_reached (overage: reject)
        () => m.commit(held.reservationId, { actual: 99 }), // conflict: other numbers
        () => m.commit(held.reservationId, { actual: 10 }), // repeat: first result
        () => m.reserve(u, "tokens", 200, { idempotencyKey: "k1" }),
        () => m.reserve(u, "tokens", 200, { idempotencyKey: "k1" }), // same key, same batch: replay
        () => m.reserve(u, "tokens", 300, { idempotencyKey: "k1" }), // same key, other arguments: conflict
        () => m.reserve(u, { tokens: 10, tokens_out: 20 }),
        () => m.track(u, "tokens", 7),
      ];
      const answers = [];
      if (together) answers.push(...(await Promise.all(calls.map((c) => errorOf(c())))));
      else for (const c of calls) answers.push(await errorOf(c()));
      return { answers, holdId: held.reservationId };
    };
    const a = await run(plain, "bad-op-plain", false);
    const b = await run(batched, "bad-op-batched", true);
    expect(sent.filter((s) => s.includes("op_"))).toEqual([expect.stringContaining(".op_reserve("), expect.stringContaining(".op_batch(")]);
    // Same answers, ids and wall-clock times aside (this test does not freeze the clock).
    const norm = (x: unknown, holdId: string, user: string) =>
      JSON.parse(JSON.stringify(x).replaceAll(holdId, "HOLD").replaceAll(user, "USER").replace(/rsv_[0-9a-f]{28,32}/g, "RSV").replace(/"expiresAt":"[^"]+"/g, '"expiresAt":"T"').replace(/"retryAfter":\d+/g, '"retryAfter":0'));
    expect(norm(b.answers, b.holdId, "bad-op-batched")).toEqual(norm(a.answers, a.holdId, "bad-op-plain"));
    expect(b.answers.map((x) => ("code" in x ? x.code : "ok"))).toEqual(
      ["ok", "not_found", "limit_reached", "conflict", "ok", "ok", "ok", "conflict", "ok", "ok"],
    );
    expect(await batched.audit("bad-op-batched")).toEqual([]);
  });

  test("a batch whose operation raises after others succeeded answers and writes exactly as unbatched: nothing twice, nothing lost", async () => {
    // op_batch first runs a batch in one subtransaction; an operation that raises sends the
    // whole batch round again, each operation alone. The calls before the failure have then
    // run twice (once rolled back): their answers, balances and entries must be those of one run.
    const { meter: plain } = recordedMeter();
    const { meter: batched, sent } = recordedMeter({ batch: true });
    const wave: string[] = [];
    const run = async (m: Meter, u: string, together: boolean) => {
      const held = await m.reserve(u, "tokens", 500);
      if (!held.allowed) throw new Error("setup reserve denied");
      await m.track(u, "images", 5);
      await m.usage(`${u}-other`).catch(() => undefined);
      sent.length = 0;
      const calls = [
        () => m.reserve(u, "tokens", 1), // leaves alone, so the rest queue behind it as one batch
        () => m.reserve(u, "tokens", 100, { idempotencyKey: "fb-1" }),
        () => m.track(u, "tokens", 7),
        () => m.commit(held.reservationId, { actual: 40 }),
        () => m.reserve(`${u}-other`, { tokens: 10, tokens_out: 20 }), // a user the default plan subscribes here
        () => m.track(u, "tokens_out", 3, { idempotencyKey: "fb-2" }),
        () => m.track(u, "images", 1), // raises limit_reached (overage: reject), after five that wrote
        () => m.reserve(u, "tokens", 200),
        () => m.reserve(u, "tokens", 100, { idempotencyKey: "fb-1" }), // replays the first reserve
      ];
      const answers = [];
      if (together) answers.push(...(await Promise.all(calls.map((c) => errorOf(c())))));
      else for (const c of calls) answers.push(await errorOf(c()));
      wave.push(...sent.filter((s) => s.includes("op_")));
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      // Per counter in order (a multi-counter reservation writes its parts in lock-key order, a
      // hash of the user id, which differs between the two users of this test).
      const { rows } = await c.query<{ user_id: string; counter_key: string; kind: string; amount: string }>(
        "SELECT user_id, counter_key, kind, amount FROM meterkit.entries WHERE user_id IN ($1, $2) ORDER BY user_id, counter_key, id",
        [u, `${u}-other`],
      );
      await c.end();
      const usage = await Promise.all([u, `${u}-other`].map(async (x) => {
        const { version: _v, updatedAt: _t, ...rest } = await m.usage(x);
        return rest;
      }));
      return { answers, entries: rows, usage, audit: [await m.audit(u), await m.audit(`${u}-other`)], holdId: held.reservationId };
    };
    const a = await run(plain, "fallback-plain", false);
    const b = await run(batched, "fallback-batched", true);
    // The failure really was inside one op_batch call, after operations that wrote.
    expect(wave).toEqual([expect.stringContaining(".op_reserve("), expect.stringContaining(".op_batch(")]);
    expect(b.answers.map((x) => ("code" in x ? x.code : "ok"))).toEqual(["ok", "ok", "ok", "ok", "ok", "ok", "limit_reached", "ok", "ok"]);
    const norm = (x: unknown, holdId: string, user: string) =>
      JSON.parse(JSON.stringify(x).replaceAll(holdId, "HOLD").replaceAll(user, "USER").replace(/rsv_[0-9a-f]{28,32}/g, "RSV").replace(/"expiresAt":"[^"]+"/g, '"expiresAt":"T"').replace(/"retryAfter":\d+/g, '"retryAfter":0'));
    expect(norm(b, b.holdId, "fallback-batched")).toEqual(norm(a, a.holdId, "fallback-plain"));
    expect(b.audit).toEqual([[], []]);
  });

  test("op_batch locks the keys the operations' own functions lock (batch_lock_key = lock_key under the meter's search_path)", async () => {
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      await c.query("SET search_path TO meterkit, pg_catalog, pg_temp");
      const { rows } = await c.query<{ same: boolean; n: string }>(
        `SELECT bool_and(batch_lock_key(u, k) = lock_key(u, k)) AS same, count(*) AS n
         FROM (VALUES ('alice', 'tokens'), ('bob', 'tokens_out'), ('ü.ser', 'images'), ('', '')) v(u, k)`,
      );
      expect(rows[0]).toEqual({ same: true, n: "4" });
    } finally {
      await c.end();
    }
  });

  test("plain reserves, commits and releases of many users run as set statements, not one function call each (0039)", async () => {
    // One connection with function statistics on, so this test can count the PL/pgSQL calls.
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    // As recordedMeter's pools: the test database is dropped at the end, which terminates any
    // connection still open; without a listener that is an unhandled 'error' event.
    pool.on("error", () => {});
    pool.on("connect", (client) => void client.query("SET track_functions = 'pl'"));
    const meter = createMeter({ database: pool, plans: PLANS, defaultPlan: "basic", sweepInterval: 0, batch: true });
    closers.push(async () => {
      await meter.close();
      await pool.end();
    });
    const users = Array.from({ length: 8 }, (_, i) => `sets-${i}`);
    // Each user's first call makes its balance row (a function call each, one after another).
    for (const u of users) await meter.commit((await meter.reserve(u, "tokens", 1) as { reservationId: string }).reservationId);
    const calls = async () => {
      await pool.query("SELECT pg_stat_force_next_flush()");
      const { rows } = await pool.query<{ funcname: string; calls: string }>(
        "SELECT funcname, calls FROM pg_stat_user_functions WHERE schemaname = 'meterkit' AND funcname IN ('op_reserve', 'op_resolve', 'op_batch')",
      );
      return Object.fromEntries(rows.map((r) => [r.funcname, Number(r.calls)]));
    };
    const diff = (a: Record<string, number>, b: Record<string, number>) =>
      Object.fromEntries(["op_batch", "op_reserve", "op_resolve"].map((f) => [f, (b[f] ?? 0) - (a[f] ?? 0)]));

    const t0 = await calls();
    // The first call leaves alone (idle meter); the other seven queue into one op_batch.
    const held = await Promise.all(users.map((u, i) => meter.reserve(u, "tokens", 100 + i)));
    const t1 = await calls();
    expect(diff(t0, t1)).toEqual({ op_batch: 1, op_reserve: 1, op_resolve: 0 });
    const ids = held.map((h) => (h as { reservationId: string }).reservationId);
    const resolved = await Promise.all(ids.map((id, i) => (i % 3 === 2 ? meter.release(id) : meter.commit(id, { actual: i % 3 === 0 ? 50 : 150 }))));
    const t2 = await calls();
    expect(diff(t1, t2)).toEqual({ op_batch: 1, op_reserve: 0, op_resolve: 1 });
    // What the set statements answered and wrote is what the functions do (the property tests
    // compare every case; here, the arithmetic of one batch).
    resolved.forEach((r, i) => {
      expect(r).toMatchObject(i % 3 === 2
        ? { status: "released", released: 100 + i }
        : { status: "committed", held: 100 + i, committed: i % 3 === 0 ? 50 : 150, refunded: Math.max(100 + i - (i % 3 === 0 ? 50 : 150), 0), overage: Math.max((i % 3 === 0 ? 50 : 150) - 100 - i, 0) });
    });
    for (const [i, u] of users.entries()) {
      const usage = await meter.usage(u);
      expect(usage.counters.find((c) => c.key === "tokens")).toMatchObject({ used: 1 + (i % 3 === 2 ? 0 : i % 3 === 0 ? 50 : 150), held: 0 });
      expect(await meter.audit(u)).toEqual([]);
    }
  });

  test("a user's first reserve of a period takes the set path too and makes the period's balance row as op_reserve does (0040)", async () => {
    // Two one-connection pools whose database clock the test sets: a batched meter that counts
    // its PL/pgSQL calls (track_functions on its connection only) and an unbatched one. Each
    // reserves for users it has never seen a balance row of, in the last minute of March and
    // in the first of April: every reserve is a first touch of its period.
    const side = (batch: boolean) => {
      const pool = new pg.Pool({ connectionString: db.url, max: 1 });
      pool.on("error", () => {});
      if (batch) pool.on("connect", (client) => void client.query("SET track_functions = 'pl'"));
      const meter = createMeter({ database: pool, plans: PLANS, defaultPlan: "basic", sweepInterval: 0, batch });
      closers.push(async () => {
        await meter.close();
        await pool.end();
      });
      return { pool, meter, users: Array.from({ length: 8 }, (_, i) => `first-${batch ? "b" : "p"}-${i}`) };
    };
    const batched = side(true);
    const plain = side(false);
    const opReserveCalls = async () => {
      await batched.pool.query("SELECT pg_stat_force_next_flush()");
      const { rows } = await batched.pool.query<{ calls: string }>(
        "SELECT calls FROM pg_stat_user_functions WHERE schemaname = 'meterkit' AND funcname = 'op_reserve'",
      );
      return Number(rows[0]?.calls ?? 0);
    };
    // User 7's quota is below what it asks: a denial, left to op_reserve, after the row is made.
    for (const s of [batched, plain]) {
      for (const u of s.users) await s.meter.upsertSubscription({ userId: u, planId: "basic", customLimits: u.endsWith("-7") ? { tokens: { quota: 50 } } : {} });
    }
    const normal = (x: unknown, prefix: string) => JSON.parse(JSON.stringify(x).replaceAll(prefix, "first-").replace(/"reservationId":"[^"]*"/g, '"reservationId":"id"'));
    for (const at of ["2026-03-31T23:59:00.000Z", "2026-04-01T00:00:30.000Z"]) {
      const answers: unknown[] = [];
      for (const s of [batched, plain]) {
        await s.pool.query("SELECT set_config('meterkit.clock', $1, false)", [at]);
        const before = s === batched ? await opReserveCalls() : 0;
        const held = await Promise.all(s.users.map((u, i) => s.meter.reserve(u, "tokens", 100 + i)));
        // The first call leaves alone (idle meter) as op_reserve; the other seven ride one
        // op_batch, in which only the denial runs through op_reserve.
        if (s === batched) expect((await opReserveCalls()) - before).toBe(2);
        const resolved = await Promise.all(held.map((h, i) => (h.allowed ? (i % 2 ? s.meter.release(h.reservationId) : s.meter.commit(h.reservationId, { actual: 60 + i })) : null)));
        const usage = await Promise.all(s.users.map(async (u) => (await s.meter.usage(u)).counters.find((c) => c.key === "tokens")));
        answers.push(normal({ held, resolved, usage }, s === batched ? "first-b-" : "first-p-"));
        for (const u of s.users) expect(await s.meter.audit(u)).toEqual([]);
        await s.pool.query("SELECT set_config('meterkit.clock', '', false)");
      }
      expect(answers[0]).toEqual(answers[1]);
      expect((answers[0] as { held: Array<{ allowed: boolean }> }).held.map((h) => h.allowed)).toEqual([true, true, true, true, true, true, true, false]);
    }
    // The balance rows are op_reserve's: one per user and period, ending where the period ends.
    const { rows } = await batched.pool.query<{ side: string; period_end: Date; n: string }>(
      `SELECT substr(user_id, 1, 7) AS side, period_end, count(*) AS n FROM meterkit.balances
       WHERE user_id LIKE 'first-%' AND counter_key = 'tokens' GROUP BY 1, 2 ORDER BY 1, 2`,
    );
    expect(rows.map((r) => [r.side, r.period_end.toISOString(), Number(r.n)])).toEqual([
      ["first-b", "2026-04-01T00:00:00.000Z", 8],
      ["first-b", "2026-05-01T00:00:00.000Z", 8],
      ["first-p", "2026-04-01T00:00:00.000Z", 8],
      ["first-p", "2026-05-01T00:00:00.000Z", 8],
    ]);
  });

  test("an operation that raises in or after the set statements sends the batch round again one operation at a time: the bad one fails alone, the others answer once", async () => {
    const { meter } = recordedMeter({ batch: true }, 1);
    const users = Array.from({ length: 6 }, (_, i) => `sets-raise-${i}`);
    for (const u of users) await meter.commit((await meter.reserve(u, "tokens", 1) as { reservationId: string }).reservationId);
    // A subscription row no client could write (the API checks custom limits): its quota is
    // not a number, so reading its context raises, in the set statement and in op_reserve alike.
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    await c.query(`UPDATE meterkit.subscriptions SET custom_limits = '{"tokens": {"quota": "lots"}}' WHERE user_id = $1`, [users[3]]);
    await c.end();
    // Round 1: user 3's reserve is plain, so the set statement itself raises. Round 2: it has
    // an idempotency key, so it runs through op_reserve after the set statement wrote the
    // others' holds, and raises there: the set statement's writes are rolled back with it and
    // must be written again, once.
    for (const round of [1, 2]) {
      const answers = await Promise.all(users.map((u, i) => errorOf(meter.reserve(u, "tokens", 10, i === 3 && round === 2 ? { idempotencyKey: "raise" } : {}))));
      expect(answers.map((a) => ("ok" in a ? "ok" : "code" in a ? a.code : a.thrown))).toEqual(["ok", "ok", "ok", "internal", "ok", "ok"]);
      for (const [i, u] of users.entries()) {
        if (i === 3) continue;
        expect((await meter.usage(u)).counters.find((x) => x.key === "tokens")).toMatchObject({ used: 1, held: 10 * round });
        expect(await meter.audit(u)).toEqual([]);
      }
      const d = new pg.Client({ connectionString: db.url });
      await d.connect();
      const { rows } = await d.query<{ user_id: string; n: string }>(
        "SELECT user_id, count(*) AS n FROM meterkit.holds WHERE user_id LIKE 'sets-raise-%' AND status = 'open' GROUP BY 1 ORDER BY 1",
      );
      await d.end();
      expect(rows).toEqual(users.filter((_, i) => i !== 3).map((u) => ({ user_id: u, n: String(round) })));
    }
  });

  test("concurrent batches touching the same users in different orders (multi-counter too) never deadlock", { timeout: 60_000 }, async () => {
    // Four batched meters (four processes) and one unbatched, on users they all meet for the
    // first time each round (the default plan's subscription is created on first contact).
    const meters = [
      ...Array.from({ length: 4 }, () => recordedMeter({ batch: { concurrency: 3, maxSize: 16 } }, 6).meter),
      recordedMeter({}, 6).meter,
    ];
    const failures: unknown[] = [];
    const t0 = performance.now();
    for (let round = 0; round < 4; round++) {
      const users = ["a", "b", "c", "d", "e"].map((x) => `dl-${round}-${x}`);
      await Promise.all(
        meters.flatMap((m, mi) =>
          Array.from({ length: 12 }, async (_, w) => {
            for (let i = 0; i < 4; i++) {
              // Each stream walks the users in its own order, so batches hold overlapping sets.
              const u = users[(mi % 2 === 0 ? w + i : 5 * 24 - w - i) % users.length]!;
              try {
                const multi = (w + i + mi) % 2 === 0;
                const r = multi ? await m.reserve(u, { tokens: 5, tokens_out: 5 }) : await m.reserve(u, "tokens_out", 5);
                if (r.allowed) {
                  if ((w + i) % 3 === 0) await m.release(r.reservationId);
                  else await m.commit(r.reservationId, multi ? { actual: { tokens: 3, tokens_out: 4 } } : { actual: 4 });
                }
              } catch (err) {
                failures.push(err);
              }
            }
          }),
        ),
      );
      for (const u of users) expect(await meters[0]!.audit(u)).toEqual([]);
    }
    // A deadlock surfaces as `unavailable` ("deadlock detected") after deadlock_timeout (1 s).
    expect(failures).toEqual([]);
    expect(performance.now() - t0).toBeLessThan(50_000);
  });
});
