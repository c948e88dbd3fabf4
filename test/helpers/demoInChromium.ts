import { mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { chromiumLaunchOptions } from "../../tools/chromium.js";
import { startDemo, type DemoProcess } from "../../tools/startDemo.js";
import { freshDatabase } from "./db.js";

/** Where the demo tests' screenshots go. */
export const SHOTS = fileURLToPath(new URL("../../test-results/demo", import.meta.url));

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
  let browser: Browser | undefined;
  let demo: DemoProcess | undefined;
  const close = async () => {
    await browser?.close();
    await demo?.stop();
    await db.drop();
  };
  try {
    demo = await startDemo(db.url, { DEMO_QUOTA: String(quota), DEMO_WORD_MS: "10" });
    browser = await chromium.launch(chromiumLaunchOptions());
    const context = await browser.newContext({ locale: "en-US", viewport: { width: 1100, height: 800 }, colorScheme: "light" });
    return { url: demo.url, page: await context.newPage(), close };
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
