import { internalsOf } from "../../src/server/internals.js";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { MeterError } from "../../src/core/errors.js";
import { createMeter, type CreateMeterOptions } from "../../src/server/index.js";
import { MAX_SCHEMA_LENGTH } from "../../src/server/schemaName.js";
import { freshDatabase } from "../helpers/db.js";
import { TEST_PLANS } from "../helpers/meter.js";

let db: Awaited<ReturnType<typeof freshDatabase>>;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => {
  await db.drop();
});

const options = (schema: string): CreateMeterOptions => ({ database: db.url, plans: TEST_PLANS, meters: { "llm.tokens": { counter: "tokens" } }, sweepInterval: 0, schema });

describe("the schema option", () => {
  test("is checked at createMeter against the limit that really holds: its NOTIFY channel must fit 63 bytes", () => {
    expect(MAX_SCHEMA_LENGTH).toBe(63 - "meterkit:".length);
    for (const length of [MAX_SCHEMA_LENGTH + 1, 60, 63, 64]) {
      let err: unknown;
      try {
        createMeter(options("s".repeat(length)));
      } catch (e) {
        err = e;
      }
      expect(err, `length ${length}`).toBeInstanceOf(MeterError);
      expect((err as MeterError).code).toBe("invalid_request");
      expect((err as MeterError).details).toMatchObject({ field: "schema", limit: MAX_SCHEMA_LENGTH });
      expect((err as MeterError).message).toMatch(/at most 54 characters/);
    }
  });

  test.each(["Upper", "1abc", "a-b", "", "a b"])("%j is not a lower-case SQL identifier", (name) => {
    expect(() => createMeter(options(name))).toThrow(/schema must be a lower-case SQL identifier/);
  });

  test("a schema of the longest length works end to end, announcements included", async () => {
    const schema = "s".repeat(MAX_SCHEMA_LENGTH);
    const meter = createMeter(options(schema));
    const listener = new pg.Client({ connectionString: db.url });
    try {
      await meter.migrate();
      await listener.connect();
      await listener.query(`LISTEN "${internalsOf(meter).channel}"`);
      const heard = new Promise<string | undefined>((resolve) => listener.once("notification", (n) => resolve(n.payload)));
      await meter.upsertSubscription({ userId: "u_long", planId: "free" });
      await meter.track("u_long", "llm.tokens", 5);
      expect(await meter.sweepExpired()).toBe(0);
      expect(await heard).toBe("u_long");
      expect(internalsOf(meter).channel).toBe(`meterkit:${schema}`);
    } finally {
      await listener.end();
      await meter.close();
    }
  });
});
