import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { periodBounds } from "../../src/core/periods.js";
import type { Anchor, Period } from "../../src/core/types.js";
import { clockPool } from "../helpers/clock.js";
import { testMeter, type TestMeter } from "../helpers/meter.js";
import { internalsOf } from "../../src/server/internals.js";

let t: TestMeter;
beforeAll(async () => {
  t = await testMeter();
});
afterAll(async () => {
  await t.cleanup();
});

const iso = (d: Date | null) => (d ? d.toISOString() : null);

async function sqlBounds(period: Period, anchor: Anchor, started: Date, now: Date) {
  const { rows } = await internalsOf(t.meter).pool.query<{ s: Date; e: Date; fs: boolean }>(
    `SELECT period_start AS s, period_end AS e, isfinite(period_start) AS fs FROM meterkit.period_bounds($1, $2, $3, $4)`,
    [period, anchor, started, now],
  );
  const r = rows[0]!;
  return r.fs ? { start: r.s.toISOString(), end: r.e.toISOString() } : { start: null, end: null };
}

describe("periods", () => {
  test.each([
    // Jan 31 start: Feb 29 in a leap year, then Mar 31 again.
    ["2024-02-10T00:00:00Z", "2024-01-31T12:00:00Z", "2024-01-31T12:00:00.000Z", "2024-02-29T12:00:00.000Z"],
    ["2024-03-01T00:00:00Z", "2024-01-31T12:00:00Z", "2024-02-29T12:00:00.000Z", "2024-03-31T12:00:00.000Z"],
    ["2024-04-15T00:00:00Z", "2024-01-31T12:00:00Z", "2024-03-31T12:00:00.000Z", "2024-04-30T12:00:00.000Z"],
    ["2025-02-28T11:59:59Z", "2025-01-31T12:00:00Z", "2025-01-31T12:00:00.000Z", "2025-02-28T12:00:00.000Z"],
    ["2025-02-28T12:00:00Z", "2025-01-31T12:00:00Z", "2025-02-28T12:00:00.000Z", "2025-03-31T12:00:00.000Z"],
    ["2026-03-29T00:00:00Z", "2025-12-29T00:00:00Z", "2026-03-29T00:00:00.000Z", "2026-04-29T00:00:00.000Z"],
    ["2026-02-28T00:00:00Z", "2025-12-30T00:00:00Z", "2026-02-28T00:00:00.000Z", "2026-03-30T00:00:00.000Z"],
  ])("a subscription_start month at %s for a start of %s runs %s to %s", async (now, started, start, end) => {
    const ts = periodBounds(new Date(now), "month", "subscription_start", new Date(started));
    expect({ start: iso(ts.start), end: iso(ts.end) }).toEqual({ start, end });
    expect(await sqlBounds("month", "subscription_start", new Date(started), new Date(now))).toEqual({ start, end });
  });

  test("calendar months, ISO weeks and UTC days", async () => {
    const now = new Date("2026-11-27T10:00:00Z"); // a Friday
    expect(periodBounds(now, "month", "calendar", now)).toEqual({ start: new Date("2026-11-01T00:00:00Z"), end: new Date("2026-12-01T00:00:00Z") });
    expect(periodBounds(now, "week", "calendar", now)).toEqual({ start: new Date("2026-11-23T00:00:00Z"), end: new Date("2026-11-30T00:00:00Z") });
    expect(periodBounds(now, "day", "calendar", now)).toEqual({ start: new Date("2026-11-27T00:00:00Z"), end: new Date("2026-11-28T00:00:00Z") });
    expect(periodBounds(now, "none", "calendar", now)).toEqual({ start: null, end: null });
    const t = new Date("2026-11-27T10:42:17.250Z");
    expect(periodBounds(t, "hour", "calendar", t)).toEqual({ start: new Date("2026-11-27T10:00:00Z"), end: new Date("2026-11-27T11:00:00Z") });
    expect(periodBounds(t, "minute", "calendar", t)).toEqual({ start: new Date("2026-11-27T10:42:00Z"), end: new Date("2026-11-27T10:43:00Z") });
    const start = new Date("2026-11-27T08:13:20.500Z");
    expect(periodBounds(t, "hour", "subscription_start", start)).toEqual({ start: new Date("2026-11-27T10:13:20.500Z"), end: new Date("2026-11-27T11:13:20.500Z") });
    expect(periodBounds(t, "minute", "subscription_start", start)).toEqual({ start: new Date("2026-11-27T10:41:20.500Z"), end: new Date("2026-11-27T10:42:20.500Z") });
  });

  test("TypeScript and SQL agree on every period for random starts and instants", async () => {
    const date = fc.date({ min: new Date("2000-01-01T00:00:00Z"), max: new Date("2060-01-01T00:00:00Z"), noInvalidDate: true });
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<Period>("month", "week", "day", "hour", "minute", "none"),
        fc.constantFrom<Anchor>("calendar", "subscription_start"),
        date,
        date,
        async (period, anchor, a, b) => {
          const [started, now] = a <= b ? [a, b] : [b, a];
          const ts = periodBounds(now, period, anchor, started);
          const sql = await sqlBounds(period, anchor, started, now);
          expect(sql).toEqual({ start: iso(ts.start), end: iso(ts.end) });
          if (ts.start && ts.end) {
            expect(ts.start.getTime()).toBeLessThanOrEqual(now.getTime());
            expect(ts.end.getTime()).toBeGreaterThan(now.getTime());
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  test("a usage read reports the current period from the database clock", async () => {
    const c = clockPool(t.url);
    const { createMeter } = await import("../../src/server/index.js");
    const meter = createMeter({ database: c.pool, plans: { p: { limits: { tokens: { quota: 10, anchor: "subscription_start" } } } }, sweepInterval: 0, schema: "clocked" });
    await meter.migrate();
    await c.set("2024-01-31T12:00:00Z");
    await meter.upsertSubscription({ userId: "jan31", planId: "p", startedAt: "2024-01-31T12:00:00Z" });
    await c.set("2024-03-05T00:00:00Z");
    const u = await meter.usage("jan31");
    expect(u.counters[0]).toMatchObject({ periodStart: "2024-02-29T12:00:00.000Z", periodEnd: "2024-03-31T12:00:00.000Z" });
    await meter.close();
    await c.pool.end();
  });
});
