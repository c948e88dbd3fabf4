import type { TestProject } from "vitest/node";
import { startEmbeddedPostgres } from "../../src/testing/startEmbeddedPostgres.js";

/**
 * Starts one embedded PostgreSQL for the whole run (unless DATABASE_URL is set) and hands its
 * URL to the test files through `inject("databaseUrl")`. Each file makes its own database.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env.DATABASE_URL) {
    project.provide("databaseUrl", process.env.DATABASE_URL);
    return async () => {};
  }
  const pg = await startEmbeddedPostgres({
    settings: { fsync: "off", synchronous_commit: "off", full_page_writes: "off", max_connections: 300 },
  });
  project.provide("databaseUrl", pg.url);
  return () => pg.stop();
}

export { freePort } from "../../src/testing/startEmbeddedPostgres.js";

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string;
  }
}
