import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createMeter } from "../../src/server/index.js";
import { TEST_PLANS, testMeter, type TestMeter } from "../helpers/meter.js";
import { internalsOf } from "../../src/server/internals.js";

let t: TestMeter;
beforeAll(async () => {
  // 64 concurrent callers need 64 connections to really race inside Postgres.
  t = await testMeter({
    poolSize: 64,
    plans: { race: { limits: { tokens: { quota: 0, period: "none" } } } },
    meters: { "llm.tokens": { counter: "tokens" } },
  });
});
afterAll(async () => {
  await t.cleanup();
});

describe("concurrent reservations never oversell", () => {
  test("64 concurrent reservers on one user whose balance fits exactly N holds: exactly N are allowed, every round", async () => {
    const { meter } = t;
    for (let round = 0; round < 12; round++) {
      const user = `hot-${round}`;
      const n = 1 + ((round * 7) % 40); // 1..40 holds fit
      const size = 25;
      await meter.upsertSubscription({ userId: user, planId: "race" });
      await meter.grant(user, "tokens", n * size);
      const results = await Promise.all(Array.from({ length: 64 }, () => meter.reserve(user, "llm.tokens", size)));
      expect(results.filter((r) => r.allowed)).toHaveLength(n);
      const u = await meter.usage(user);
      expect(u.counters[0]).toMatchObject({ held: n * size, remaining: 0 });
    }
    expect(await meter.audit()).toEqual([]);
  });

  test("the same spread over many users: each user gets exactly its own N", async () => {
    const { meter } = t;
    const users = Array.from({ length: 16 }, (_, i) => ({ id: `spread-${i}`, n: (i % 5) + 1 }));
    for (const u of users) {
      await meter.upsertSubscription({ userId: u.id, planId: "race" });
      await meter.grant(u.id, "tokens", u.n * 10);
    }
    const calls = users.flatMap((u) => Array.from({ length: 8 }, () => meter.reserve(u.id, "llm.tokens", 10).then((r) => [u.id, r.allowed] as const)));
    const results = await Promise.all(calls);
    for (const u of users) {
      expect(results.filter(([id, ok]) => id === u.id && ok)).toHaveLength(u.n);
    }
    expect(await meter.audit()).toEqual([]);
  });

  test("mixed with commits and releases, used + held never exceeds what was granted, and the audit is clean", async () => {
    const { meter } = t;
    const user = "mixed";
    const budget = 5_000;
    await meter.upsertSubscription({ userId: user, planId: "race" });
    await meter.grant(user, "tokens", budget);
    let committed = 0;
    const worker = async (w: number) => {
      for (let i = 0; i < 25; i++) {
        const amount = 20 + ((w * 31 + i * 17) % 80);
        const r = await meter.reserve(user, "llm.tokens", amount);
        if (!r.allowed) continue;
        if ((w + i) % 3 === 0) {
          await meter.release(r.reservationId);
        } else {
          const actual = Math.floor(amount / 2) + (i % 5);
          const c = await meter.commit(r.reservationId, { actual });
          committed += c.committed;
        }
      }
    };
    const sampler = (async () => {
      for (let i = 0; i < 20; i++) {
        const c = (await meter.usage(user)).counters[0]!;
        expect(c.used + c.held).toBeLessThanOrEqual(c.quota! + c.granted);
      }
    })();
    await Promise.all([...Array.from({ length: 32 }, (_, w) => worker(w)), sampler]);
    const c = (await meter.usage(user)).counters[0]!;
    expect(c.held).toBe(0);
    expect(c.used).toBe(committed);
    expect(c.remaining).toBe(budget - committed);
    expect(await meter.audit()).toEqual([]);
  });

  test("concurrent commits and releases of one hold resolve it exactly once", async () => {
    const { meter } = t;
    await meter.upsertSubscription({ userId: "once", planId: "race" });
    await meter.grant("once", "tokens", 1000);
    for (let round = 0; round < 10; round++) {
      const r = await meter.reserve("once", "llm.tokens", 100);
      if (!r.allowed) throw new Error("denied");
      const outcomes = await Promise.allSettled([
        ...Array.from({ length: 6 }, () => meter.commit(r.reservationId, { actual: 40 })),
        ...Array.from({ length: 6 }, () => meter.release(r.reservationId)),
      ]);
      const ok = outcomes.filter((o) => o.status === "fulfilled").map((o) => (o as PromiseFulfilledResult<{ status: string }>).value.status);
      // Whichever came first wins; the others of the same kind repeat its result, the other kind conflict.
      expect(new Set(ok).size).toBe(1);
      expect(ok.length).toBe(6);
      for (const o of outcomes) if (o.status === "rejected") expect((o.reason as { code: string }).code).toBe("conflict");
    }
    const { rows } = await internalsOf(meter).pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM meterkit.entries WHERE user_id = 'once' AND kind IN ('commit', 'release')`,
    );
    expect(Number(rows[0]!.n)).toBe(10);
    expect(await meter.audit("once")).toEqual([]);
  });
});

describe("one idempotency key used on two counters of one user at the same moment", () => {
  test.each([
    ["one meter, unbatched", false],
    ["two app servers, each batching its calls", true],
  ])("%s: one call wins; the others answer conflict (not internal), and the ledger holds only the winner's writes", async (_, batch) => {
    // Locks are per (user, counter), so calls on two counters do not wait for each other; the key
    // is per user, so they meet only at the idempotency row. With batching, the calls of one meter
    // share a transaction (and see each other's key); two meters on one database (two app
    // servers) race as unbatched calls do.
    const meters = { "llm.tokens": { counter: "tokens" }, "llm.cost": { counter: "credits", price: "input" as const } };
    const two = await testMeter({ poolSize: 16, batch, meters });
    const other = batch ? createMeter({ database: two.url, poolSize: 16, batch, sweepInterval: 0, plans: TEST_PLANS, meters }) : null;
    try {
      const { meter } = two;
      const callerOf = (i: number) => (other && i % 4 >= 2 ? other : meter);
      for (let round = 0; round < 8; round++) {
        const user = `keyed-${round}`;
        await meter.upsertSubscription({ userId: user, planId: "pro" });
        const key = `same-key-${round}`;
        const outcomes = await Promise.allSettled(
          Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? callerOf(i).reserve(user, "tokens", 100 + i, { idempotencyKey: key }) : callerOf(i).reserve(user, "credits", 10 + i, { idempotencyKey: key }))),
        );
        // All eight carry other arguments, so exactly one is applied and seven are conflicts.
        const codes = outcomes.filter((o) => o.status === "rejected").map((o) => (o.reason as { code: string }).code);
        expect(codes).toEqual(Array(7).fill("conflict"));
        const won = outcomes.flatMap((o) => (o.status === "fulfilled" ? [o.value] : []));
        expect(won).toHaveLength(1);
        if (!won[0]!.allowed) throw new Error("the winner was denied");
        const usage = await meter.usage(user);
        expect(usage.counters.reduce((s, c) => s + c.held, 0)).toBe(won[0]!.amount);
        expect(await meter.audit(user)).toEqual([]);
      }
    } finally {
      await other?.close();
      await two.cleanup();
    }
  }, 60_000);
});
