/*
 * `npm run screenshots`: the README's pictures of the demo, taken from the real thing. Starts
 * a throwaway embedded Postgres and `demo/server.ts`, plays a short session in Chromium, and
 * writes docs/screenshots/{chat,usage,dialog}.png (plus dark-mode variants of the chat), and
 * auto-top-up.png / auto-top-up-chat.png (the setting on, and a top-up landing mid-chat).
 *
 *   CHROMIUM_PATH   Chromium to drive (default /usr/bin/chromium)
 */
import { randomUUID } from "node:crypto";
import { mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { chromiumLaunchOptions } from "../tools/chromium.js";
import { startDemo, type DemoProcess } from "../tools/startDemo.js";
import { startEmbeddedPostgres } from "../demo/embeddedPostgres.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const OUT = join(ROOT, "docs", "screenshots");
const VIEWPORT = { width: 1200, height: 800 };

async function sendPrompt(page: Page, prompt: string, limit: number) {
  await page.getByLabel("Reply limit").selectOption(String(limit));
  await page.getByRole("textbox", { name: "Prompt" }).fill(prompt);
  await page.getByRole("textbox", { name: "Prompt" }).press("Enter");
}

async function waitForCost(page: Page, index: number, text: string) {
  await page.locator('[data-testid="reply-cost"]').nth(index).filter({ hasText: text }).waitFor({ timeout: 30_000 });
}

/** Waits until reply `index` has at least `words` words on screen. */
async function waitForWords(page: Page, index: number, words: number) {
  await page.waitForFunction(
    ([i, n]) => (document.querySelectorAll('[data-testid="reply"]')[i]?.textContent ?? "").split(/\s+/).length >= n,
    [index, words] as const,
    { timeout: 30_000 },
  );
}

async function shoot(page: Page, name: string, options: { fullPage?: boolean } = {}) {
  const path = join(OUT, `${name}.png`);
  // Let transitions (the balance bar) settle and hide the blinking caret's timing from the picture.
  await page.waitForTimeout(450);
  await page.screenshot({ path, fullPage: options.fullPage ?? false, animations: "disabled" });
  console.log(`  ${name}.png`);
}

async function main() {
  await mkdir(OUT, { recursive: true });
  const dataDir = join(tmpdir(), `meterkit-screenshots-${randomUUID()}`);
  const postgres = await startEmbeddedPostgres(dataDir);
  let demo: DemoProcess | null = null;
  let browser: Browser | null = null;
  try {
    demo = await startDemo(postgres.url, { DEMO_WORD_MS: "22" });
    browser = await chromium.launch(chromiumLaunchOptions(["--font-render-hinting=none"]));
    console.log(`Writing ${OUT}:`);

    for (const scheme of ["light", "dark"] as const) {
      const context = await browser.newContext({ viewport: VIEWPORT, locale: "en-US", colorScheme: scheme, deviceScaleFactor: 1 });
      const page = await context.newPage();
      const suffix = scheme === "dark" ? "-dark" : "";
      // The same scene in both colour schemes: start each from a fresh demo user.
      await fetch(`${demo.url}/api/reset`, { method: "POST" });
      await page.goto(demo.url);
      await page.locator('[data-testid="balance"][data-state="ok"]').waitFor();

      // 1. The chat: one settled reply, and a second one streaming with its hold on the badge.
      await sendPrompt(page, "Hi! What can you do?", 300);
      await waitForCost(page, 0, "Charged");
      await sendPrompt(page, "Write a long story about a metered model", 600);
      await waitForWords(page, 1, 45);
      await shoot(page, `chat${suffix}`);
      await page.getByRole("button", { name: "Stop" }).click();
      await waitForCost(page, 1, "Stopped · charged");

      // 2. The usage view, after one more reply.
      await sendPrompt(page, "What does meterkit do?", 300);
      await waitForCost(page, 2, "Charged");
      await sendPrompt(page, "How are tokens counted?", 300);
      await waitForCost(page, 3, "Charged");
      await page.getByRole("link", { name: "Usage" }).click();
      await page.locator("table.demo-entries tbody tr").first().waitFor();
      await shoot(page, `usage${suffix}`, { fullPage: true });
      await context.close();
    }

    // 3. Out of tokens: a 1,000-token plan, two replies, and a third prompt whose hold does not fit.
    await demo.stop();
    demo = await startDemo(postgres.url, { DEMO_QUOTA: "1000", DEMO_WORD_MS: "5" });
    for (const scheme of ["light", "dark"] as const) {
      const context = await browser.newContext({ viewport: VIEWPORT, locale: "en-US", colorScheme: scheme, deviceScaleFactor: 1 });
      const page = await context.newPage();
      await fetch(`${demo.url}/api/reset`, { method: "POST" });
      await page.goto(demo.url);
      await page.locator('[data-testid="balance"][data-state="ok"]').waitFor();
      await sendPrompt(page, "Hi! What can you do?", 300);
      await waitForCost(page, 0, "Charged");
      await sendPrompt(page, "What does meterkit do?", 300);
      await waitForCost(page, 1, "Charged");
      await sendPrompt(page, "Write a long story about a metered model", 1000);
      await page.getByRole("dialog").getByRole("button", { name: /Starter pack/ }).waitFor();
      await shoot(page, `dialog${scheme === "dark" ? "-dark" : ""}`);
      await context.close();
    }

    // 4. Auto top-up: save a stand-in card, turn it on below 1,000 tokens, chat across it.
    await demo.stop();
    demo = await startDemo(postgres.url, { DEMO_QUOTA: "1500", DEMO_WORD_MS: "22" });
    {
      const context = await browser.newContext({ viewport: VIEWPORT, locale: "en-US", colorScheme: "light", deviceScaleFactor: 1 });
      const page = await context.newPage();
      await fetch(`${demo.url}/api/reset`, { method: "POST" });
      await page.goto(`${demo.url}/usage`);
      const setting = page.getByTestId("auto-top-up");
      const [checkout] = await Promise.all([page.waitForEvent("popup"), setting.getByRole("button", { name: "Save a card" }).click()]);
      await checkout.getByRole("button", { name: "Save card" }).click();
      await checkout.getByText("Card saved. You can close this tab.").waitFor();
      await checkout.close();
      await setting.getByTestId("card-saved").waitFor({ timeout: 15_000 });
      await setting.getByLabel("Below").selectOption("1000");
      await setting.getByLabel("Turn on auto top-up").check();
      await setting.getByText("Auto top-up is on").waitFor();
      await shoot(page, "auto-top-up");
      await page.getByRole("link", { name: "Chat" }).click();
      await sendPrompt(page, "Hi! What can you do?", 300);
      await waitForCost(page, 0, "Charged");
      await sendPrompt(page, "Write a long story about a metered model", 600);
      await page.getByText("Auto top-up: +").waitFor({ timeout: 30_000 });
      await waitForWords(page, 1, 30);
      await shoot(page, "auto-top-up-chat");
      await context.close();
    }
  } finally {
    await browser?.close();
    await demo?.stop();
    await postgres.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
