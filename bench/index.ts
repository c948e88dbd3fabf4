/**
 * `npm run bench [-- name…]`: runs every benchmark (or the named ones) against one PostgreSQL
 * (DATABASE_URL, or an embedded one with fsync on) and prints their tables.
 */
import { readdirSync } from "node:fs";
import { benchDatabase } from "./util.js";

const here = new URL(".", import.meta.url);
const wanted = process.argv.slice(2);
const names = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && !["index.ts", "util.ts"].includes(f))
  .map((f) => f.slice(0, -3))
  .filter((n) => wanted.length === 0 || wanted.includes(n))
  .sort();

const db = await benchDatabase();
let failed = false;
try {
  console.log(`# meterkit benchmarks — ${new Date().toISOString()} — node ${process.version}, ${(await import("node:os")).cpus().length} cores`);
  for (const name of names) {
    const mod = (await import(new URL(`./${name}.ts`, here).href)) as { default?: (ctx: { databaseUrl: string }) => Promise<void> };
    if (typeof mod.default !== "function") continue;
    const t0 = performance.now();
    try {
      await mod.default({ databaseUrl: db.url });
    } catch (err) {
      failed = true;
      console.error(`benchmark ${name} failed:`, err);
    }
    console.log(`(${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }
} finally {
  await db.stop();
}
process.exit(failed ? 1 : 0);
