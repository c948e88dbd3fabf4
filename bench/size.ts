/**
 * Bundle size of meterkit/react: gzipped JavaScript a page ships, as `.size-limit.cjs` measures
 * it (esbuild bundle of the source, minified, production). Running size-limit itself keeps the
 * printed figures and the budgets `npm test` enforces the same numbers.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Peers measured the same way, as reported in issue 4 (not re-measured here: no network). */
const PEERS: Array<[string, number]> = [
  ["autumn-js 1.3.13 (hooks only, no components)", 12_500],
  ["@flowglad/react 0.18.0 (hooks only)", 63_300],
  ["autumn-js 0.1.85 with its PaywallDialog", 154_900],
];

interface SizeLimitResult {
  name: string;
  passed: boolean;
  size: number;
  sizeLimit?: number;
}

const kB = (n: number | undefined) => (n === undefined ? "" : `${(n / 1000).toFixed(2)} kB`);

export default async function sizeBench(): Promise<void> {
  // size-limit exits non-zero when a budget is exceeded but still prints the JSON.
  const { stdout } = await promisify(execFile)(process.execPath, ["node_modules/size-limit/bin.js", "--json"], { cwd: ROOT }).catch(
    (e: { stdout?: string }) => ({ stdout: e.stdout ?? "[]" }),
  );
  const results = JSON.parse(stdout) as SizeLimitResult[];
  const rows = results.map((r) => ({ bundle: r.name, gzip: kB(r.size), budget: kB(r.sizeLimit), within: r.passed ? "yes" : "NO" }));
  for (const [name, size] of PEERS) rows.push({ bundle: `peer: ${name}`, gzip: kB(size), budget: "", within: "" });
  console.log("\nmeterkit/react bundle size (esbuild, minified, gzip)");
  console.table(rows);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await sizeBench();
