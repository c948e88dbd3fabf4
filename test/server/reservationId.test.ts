import fc from "fast-check";
import pg from "pg";
import { afterAll, beforeAll, expect, test } from "vitest";
import { createMeter } from "../../src/server/index.js";
import { newReservationId, reservationUser } from "../../src/server/ledger/reservationId.js";
import { freshDatabase } from "../helpers/db.js";
import { TEST_PLANS } from "../helpers/meter.js";

// The reservation id format has two readers: Node (the batcher's routing, reservation lookups)
// and SQL (`reservation_user()`, which every commit and release calls to find its hold by
// user). They must agree on every id a caller can send, and the SQL one must keep the meaning
// it had when holds were first stored under it (migration 0030's regular expression).

let db: Awaited<ReturnType<typeof freshDatabase>>;
let pool: pg.Pool;
beforeAll(async () => {
  db = await freshDatabase();
  const setup = createMeter({ database: db.url, plans: TEST_PLANS, sweepInterval: 0 });
  await setup.migrate();
  await setup.close();
  pool = new pg.Pool({ connectionString: db.url, max: 1 });
  pool.on("error", () => {});
});
afterAll(async () => {
  await pool.end();
  await db.drop();
});

/** For each id: what reservation_user() says, and what 0030's definition said. */
async function sqlReaders(ids: string[]): Promise<Array<{ now: string | null; regex: string | null }>> {
  const { rows } = await pool.query<{ now: string | null; regex: string | null }>(
    `SELECT meterkit.reservation_user(id) AS now,
            CASE WHEN id ~ '^rsv_[0-9a-f]{28}_.' THEN substr(id, 34) END AS regex
       FROM unnest($1::text[]) WITH ORDINALITY AS t(id, o) ORDER BY o`,
    [ids],
  );
  return rows;
}

const HEX28 = "0123456789abcdef0123456789ab";

test("reservation_user() in SQL and reservationUser() in Node read every id alike, as migration 0030 did", async () => {
  const users = ["u1", "alice@example.com", "ü-ñ-字", "\u2028line-separator", "\u2029p", " space", "_", "x".repeat(222), "x".repeat(223)];
  const ids = [
    ...users.map((u) => newReservationId(u)),
    `rsv_${HEX28}_u`, // the shortest routed id
    `rsv_${HEX28}_`, // nothing after the separator
    `rsv_${HEX28.toUpperCase()}_u`, // upper-case hex is not the format
    `rsv_${HEX28.slice(1)}_u`, // 27 digits
    `rsv_${HEX28}x_u`, // 29 characters before the separator
    `rsv_${HEX28}xu`, // no separator
    `rsv_${HEX28.slice(0, 27)}g_u`, // a letter past f
    `rsv_${HEX28.slice(0, 27)}é_u`, // a multi-byte character among the digits
    `rsv_${HEX28.slice(0, 27)} _u`,
    `RSV_${HEX28}_u`,
    `rsv-${HEX28}_u`,
    `rsv_${HEX28}_\u2028`,
    `rsv_${HEX28}__`,
    "rsv_0123456789abcdef0123456789abcdef", // the unrouted form (32 digits)
    "rsv_",
    "r",
  ];
  const sql = await sqlReaders(ids);
  ids.forEach((id, i) => {
    expect({ id, sql: sql[i]!.now }).toEqual({ id, sql: sql[i]!.regex });
    expect({ id, node: reservationUser(id) }).toEqual({ id, node: sql[i]!.now });
  });
  // The ids the meter makes name their user, unless the user id is too long to fit.
  users.forEach((u, i) => expect(sql[i]!.now).toBe(u.length <= 222 ? u : null));

  // And on ids close to the format, drawn at random.
  const hexish = fc.string({ unit: fc.constantFrom(..."0123456789abcdefABg_é\u2028 "), minLength: 26, maxLength: 30 });
  const tail = fc.string({ unit: fc.oneof(fc.constantFrom("_", "\u2028", "é"), fc.string({ minLength: 1, maxLength: 1 })), maxLength: 4 });
  const prefix = fc.constantFrom("rsv_", "rsv_", "rsv_", "RSV_", "rsv", "");
  const sep = fc.constantFrom("_", "_", "", "-");
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(prefix, hexish, sep, tail).map((p) => p.join("")), { minLength: 1, maxLength: 50 }), async (batch) => {
      const rows = await sqlReaders(batch);
      batch.forEach((id, i) => {
        expect(rows[i]!.now).toBe(rows[i]!.regex);
        expect(reservationUser(id)).toBe(rows[i]!.now);
      });
    }),
    { numRuns: 60 },
  );
});
