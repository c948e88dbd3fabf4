import { expect, test } from "vitest";
import { runLedgerChaos } from "./harness/runLedgerChaos.js";
import { recordFigures } from "./harness/report.js";
import { SIZES } from "./harness/sizes.js";

// In `npm test` the short form; `npm run soak` runs the same test with the long figures.
const o = SIZES.ledger;

test(
  "worker processes under SIGKILL, dropped connections, terminated backends, Postgres restarts and crashes: nothing lost, nothing doubled, every orphaned hold expired, audit clean",
  async () => {
    const report = await runLedgerChaos({ ...o, progress: process.env.METERKIT_SOAK ? (line) => console.log(`[chaos] ${line}`) : () => {} });
    recordFigures("ledger chaos", {
      operations: report.ops,
      attempts: report.attempts,
      acknowledged: report.acknowledged,
      unacknowledged: report.unacknowledged,
      unacknowledgedApplied: report.unacknowledgedApplied,
      faults: report.faults,
      workerIncarnations: report.workerIncarnations,
      violations: report.violations.length,
      errorsByCode: report.errorsByCode,
      maxRecoveryMs: report.maxRecoveryMs,
      wallMs: report.wallMs,
    });
    expect(report.violations).toEqual([]);
    // The run really was under fire, and really did work.
    for (const n of Object.values(report.faults)) expect(n).toBeGreaterThanOrEqual(1);
    expect(report.errorsByCode.unavailable ?? 0).toBeGreaterThan(0);
    expect(report.acknowledged).toBeGreaterThan(1_000);
    expect(report.maxRecoveryMs).toBeLessThan(o.recoveryMs);
  },
  o.durationMs + 180_000,
);
