import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** Where Vite writes the page (git-ignored, like every `dist/`). */
export const WEB_ROOT = join(ROOT, "demo", "dist");
const CONFIG = join(ROOT, "demo", "vite.config.ts");
/** What the page is built from: a change to any of these rebuilds it. */
const SOURCES = ["demo/web", "demo/constants.ts", "demo/vite.config.ts", "src/react", "src/core"].map((p) => join(ROOT, p));

/**
 * Builds the page with Vite unless the build is newer than every source file, so `npm start`
 * is quick after the first run and never serves a stale page. Resolves with how long it took,
 * or null when the build was up to date.
 */
export async function buildPage({ force = false } = {}): Promise<number | null> {
  const index = join(WEB_ROOT, "index.html");
  if (!force && existsSync(index) && statSync(index).mtimeMs >= Math.max(...SOURCES.map(newestMtime))) return null;
  const started = Date.now();
  const { build } = await import("vite");
  // Vite follows NODE_ENV over `mode`: under a test runner (NODE_ENV=test) it would bundle
  // React's development build. The page served is always the production one.
  const nodeEnv = process.env.NODE_ENV;
  process.env.NODE_ENV = "production";
  try {
    await build({ configFile: CONFIG, logLevel: "warn", mode: "production" });
  } finally {
    if (nodeEnv === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = nodeEnv;
  }
  return Date.now() - started;
}

function newestMtime(path: string): number {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const name of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, name)));
  return newest;
}
