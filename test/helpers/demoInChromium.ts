import { spawn, type ChildProcess } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { chromiumLaunchOptions } from "../../tools/chromium.js";
import { freshDatabase } from "./db.js";

/** The repository's root (where `demo/server.ts` runs from). */
export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** Where the demo tests' screenshots go. */
export const SHOTS = join(ROOT, "test-results", "demo");

export interface DemoInChromium {
  url: string;
  page: Page;
  /** Closes the browser, stops the server and drops its database. */
  close(): Promise<void>;
}

/**
 * `demo/server.ts` as `npm start` runs it, on a fresh database of the run's Postgres and the
 * local Stripe stand-in, with a `quota`-token plan and replies at 10 ms a word (fast, yet slow
 * enough to see the hold while a reply streams), and one page in Debian Chromium.
 */
export async function startDemoInChromium(quota: number): Promise<DemoInChromium> {
  const db = await freshDatabase();
  await mkdir(SHOTS, { recursive: true });
  const server: ChildProcess = spawn(process.execPath, ["--import", "tsx", "demo/server.ts"], {
    cwd: ROOT,
    env: { ...process.env, PORT: "0", DATABASE_URL: db.url, DEMO_QUOTA: String(quota), DEMO_WORD_MS: "10", STRIPE_SECRET_KEY: "", STRIPE_WEBHOOK_SECRET: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let browser: Browser | undefined;
  const close = async () => {
    await browser?.close();
    if (server.exitCode === null) {
      const exited = new Promise((r) => server.once("exit", r));
      server.kill("SIGTERM");
      await exited;
    }
    await db.drop();
  };
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = "";
      const onData = (chunk: Buffer) => {
        out += chunk.toString();
        const m = /ready in [\d.]+ s: (http:\/\/\S+)/.exec(out);
        if (m) resolve(m[1]!);
      };
      server.stdout!.on("data", onData);
      server.stderr!.on("data", onData);
      server.once("exit", (code) => reject(new Error(`demo/server.ts exited (${code}) before it was ready:\n${out}`)));
    });
    browser = await chromium.launch(chromiumLaunchOptions());
    const context = await browser.newContext({ locale: "en-US", viewport: { width: 1100, height: 800 }, colorScheme: "light" });
    return { url, page: await context.newPage(), close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** The balance the badge shows ("1,172 tokens left"). */
export async function badgeBalance(page: Page): Promise<number> {
  const text = (await page.locator('[data-testid="balance"] .mk-badge-text').textContent()) ?? "";
  const m = /^([\d,]+) tokens? left/.exec(text);
  return m ? Number(m[1]!.replace(/,/g, "")) : NaN;
}
