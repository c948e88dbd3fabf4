import { appendFileSync } from "node:fs";

/** What one part of the suite did: merged by `npm run soak` into its report. */
export interface Figures {
  operations: number;
  faults?: Record<string, number>;
  violations: number;
  errorsByCode?: Record<string, number>;
  [extra: string]: unknown;
}

/**
 * Records the figures of one part of the suite: printed as one `[reliability]` line, and
 * appended to `$METERKIT_RELIABILITY_REPORT` (JSON lines) when `npm run soak` set it.
 */
export function recordFigures(part: string, figures: Figures): void {
  const line = JSON.stringify({ part, ...figures });
  console.log(`[reliability] ${line}`);
  const file = process.env.METERKIT_RELIABILITY_REPORT;
  if (file) appendFileSync(file, line + "\n");
}

/**
 * Counts the tests of this file that fail (an attack that succeeded): registered once per
 * file, read in `afterAll` when recording the figures.
 */
export function countFailures(afterEach: (fn: (ctx: { task: { result?: { state?: string; errors?: unknown[] } } }) => void) => void): { readonly n: number } {
  const counter = { n: 0 };
  afterEach(({ task }) => {
    if (task.result?.state === "fail" || (task.result?.errors?.length ?? 0) > 0) counter.n++;
  });
  return counter;
}
