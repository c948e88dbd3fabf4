import { vi } from "vitest";
import { migrateOnLayout } from "./layout.js";

/*
 * Setup file of the node projects: every meter.migrate() (whoever creates the meter: the
 * helpers in test/helpers/meter.ts or a test's own createMeter) goes through migrateOnLayout,
 * which converts the schema to the partitioned layout when MK_TEST_LAYOUT=partitioned and
 * changes nothing otherwise.
 */
vi.mock("../../src/server/migrate.js", async (importOriginal) => {
  const original = await importOriginal<typeof import("../../src/server/migrate.js")>();
  return { ...original, migrate: (pool: Parameters<typeof original.migrate>[0], schema: string) => migrateOnLayout(original.migrate, pool, schema) };
});
