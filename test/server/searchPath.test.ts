import pg from "pg";
import { afterAll, beforeAll, expect, test } from "vitest";
import { createMeter } from "../../src/server/index.js";
import { freshDatabase } from "../helpers/db.js";
import { TEST_PLANS } from "../helpers/meter.js";

let db: Awaited<ReturnType<typeof freshDatabase>>;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => {
  await db.drop();
});

test("a caller's temporary tables and search_path cannot shadow the ledger's tables", async () => {
  const setup = createMeter({ database: db.url, plans: TEST_PLANS, meters: { "llm.tokens": { counter: "tokens" } }, sweepInterval: 0 });
  await setup.migrate();
  await setup.close();
  // The app's own pool, whose sessions carry look-alike temporary tables and a path of their own.
  const pool = new pg.Pool({ connectionString: db.url, max: 1 });
  pool.on("connect", (client) => {
    void client.query(`CREATE TEMP TABLE holds (LIKE meterkit.holds INCLUDING DEFAULTS);
                       CREATE TEMP TABLE entries (LIKE meterkit.entries INCLUDING DEFAULTS);
                       CREATE TEMP TABLE balances (LIKE meterkit.balances INCLUDING DEFAULTS);
                       SET search_path TO pg_temp, public`);
  });
  const meter = createMeter({ database: pool, plans: TEST_PLANS, meters: { "llm.tokens": { counter: "tokens" } }, sweepInterval: 0 });
  try {
    await meter.upsertSubscription({ userId: "shadowed", planId: "free" });
    const r = await meter.reserve("shadowed", "llm.tokens", 100);
    if (!r.allowed) throw new Error("expected the reservation to be allowed");
    expect(await meter.commit(r.reservationId, { actual: 40 })).toMatchObject({ status: "committed", committed: 40 });
    await meter.track("shadowed", "llm.tokens", 5);
    // Everything landed in the meter's schema, nothing in the session's look-alikes.
    expect((await meter.usage("shadowed")).counters.find((c) => c.key === "tokens")).toMatchObject({ used: 45, held: 0 });
    expect(await meter.reservation(r.reservationId)).toMatchObject({ status: "committed", committed: 40 });
    const { rows } = await pool.query<{ n: string }>(
      "SELECT (SELECT count(*) FROM pg_temp.holds) + (SELECT count(*) FROM pg_temp.entries) + (SELECT count(*) FROM pg_temp.balances) AS n",
    );
    expect(Number(rows[0]!.n)).toBe(0);
    expect(await meter.audit("shadowed")).toEqual([]);
  } finally {
    await meter.close();
    await pool.end();
  }
});
