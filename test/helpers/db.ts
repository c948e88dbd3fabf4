import { inject } from "vitest";
import { createTestDatabase } from "../../src/testing/createTestDatabase.js";

/**
 * A fresh database for one test file, on the run's PostgreSQL. Returns its URL and a drop().
 */
export function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  return createTestDatabase(inject("databaseUrl"));
}
