import { vi } from "vitest";
import type { CreateMeterOptions } from "../../src/server/createMeter.js";

/*
 * `METERKIT_TEST_BATCH=1 npx vitest run --project node …` runs the node suites with every
 * meter on the batched path (`createMeter({ batch: true })` unless a test sets `batch`
 * itself), so the ledger and reliability suites check it unchanged. Off by default.
 */
if (process.env.METERKIT_TEST_BATCH === "1") {
  vi.doMock(import("../../src/server/createMeter.js"), async (importOriginal) => {
    const mod = await importOriginal();
    return { ...mod, createMeter: (options: CreateMeterOptions) => mod.createMeter({ batch: true, ...options }) };
  });
}
