/**
 * `npm run soak`: the reliability suite (test/reliability) in its long form — the same tests
 * as in `npm test`, with the long figures of test/reliability/harness/sizes.ts (METERKIT_SOAK=1):
 * minutes of chaos on the ledger, thousands of fuzzed calls and requests, floods of webhooks.
 * Prints operations tried, faults injected, invariant violations and errors by code, and exits
 * non-zero when anything failed.
 *
 *   npm run soak                      # everything
 *   npm run soak -- ledgerChaos       # only files matching a filter (vitest filters)
 *   SOAK_MINUTES=30 npm run soak      # a longer chaos run (default 10)
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

interface Part {
  part: string;
  operations: number;
  violations: number;
  faults?: Record<string, number>;
  errorsByCode?: Record<string, number>;
  [extra: string]: unknown;
}

const dir = mkdtempSync(join(tmpdir(), "meterkit-soak-"));
const reportFile = join(dir, "figures.jsonl");
const filters = process.argv.slice(2);
const started = Date.now();
console.log(`meterkit soak: long form of test/reliability${filters.length ? ` (${filters.join(" ")})` : ""}; this takes a while…\n`);
const run = spawnSync("npx", ["vitest", "run", "--project", "node", "--reporter", "verbose", ...(filters.length ? filters.map((f) => `test/reliability/${f}`) : ["test/reliability"])], {
  stdio: "inherit",
  env: { ...process.env, METERKIT_SOAK: "1", METERKIT_RELIABILITY_REPORT: reportFile },
});

const parts: Part[] = existsSync(reportFile)
  ? readFileSync(reportFile, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as Part)
  : [];
rmSync(dir, { recursive: true, force: true });

const sum = (xs: Array<Record<string, number> | undefined>) => {
  const out: Record<string, number> = {};
  for (const x of xs) for (const [k, v] of Object.entries(x ?? {})) out[k] = (out[k] ?? 0) + v;
  return out;
};
const line = (label: string, value: unknown) => console.log(`  ${label.padEnd(26)} ${typeof value === "object" ? JSON.stringify(value) : String(value)}`);

console.log("\n================ meterkit soak report ================");
for (const p of parts) {
  console.log(`\n${p.part}`);
  line("operations tried", p.operations);
  if (p.faults) line("faults injected", p.faults);
  line("invariant violations", p.violations);
  if (p.errorsByCode) line(p.part.includes("HTTP") || p.part.includes("webhook") ? "answers by status" : "errors by code", p.errorsByCode);
  for (const [k, v] of Object.entries(p)) {
    if (!["part", "operations", "faults", "violations", "errorsByCode"].includes(k)) line(k, v);
  }
}
const faults = sum(parts.map((p) => p.faults));
console.log("\nTOTAL");
line("operations tried", parts.reduce((s, p) => s + p.operations, 0));
line("faults injected", Object.values(faults).reduce((s, n) => s + n, 0) + ` ${JSON.stringify(faults)}`);
line("invariant violations", parts.reduce((s, p) => s + p.violations, 0));
line("ledger errors by code", sum(parts.filter((p) => !p.part.includes("HTTP") && !p.part.includes("webhook")).map((p) => p.errorsByCode)));
line("test run", run.status === 0 ? "passed" : `FAILED (exit ${run.status})`);
line("wall time", `${Math.round((Date.now() - started) / 1000)} s`);
process.exit(run.status === 0 && parts.every((p) => p.violations === 0) ? 0 : 1);
