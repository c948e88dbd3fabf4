import { join } from "node:path";
import type { Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { DEMO_MODEL, SYSTEM_PROMPT } from "../../demo/constants.js";
import { plannedReply } from "../../demo/model.js";
import { countTokens, estimateChatTokens, type ChatMessageLike } from "../../src/ai/index.js";
import { badgeBalance, SHOTS, startDemoInChromium, type DemoInChromium } from "../helpers/demoInChromium.js";

/*
 * The demo end to end: `demo/server.ts` as `npm start` runs it (on a fresh database of the
 * run's Postgres, the local Stripe stand-in, a small quota), driven in Debian Chromium through
 * playwright-core. One browser, one page, one story. Screenshots go to test-results/demo/.
 */

const QUOTA = 1500;
const PACK = 10_000;

let url: string;
let page: Page;

let demo: DemoInChromium;
beforeAll(async () => {
  demo = await startDemoInChromium(QUOTA);
  ({ url, page } = demo);
}, 90_000);

afterAll(async () => {
  await demo?.close();
});

/** The balance the badge shows ("1,172 tokens left"). */
const balance = () => badgeBalance(page);

async function shot(name: string, target: Page = page) {
  // Finished transitions: the picture shows the state the test just checked, not a bar mid-way.
  await target.screenshot({ path: join(SHOTS, `${name}.png`), animations: "disabled" });
}

/** Waits until the locator's text contains `text`. */
async function textOf(locator: Locator, text: string, timeout: number) {
  await expect.poll(async () => (await locator.textContent()) ?? "", { timeout }).toContain(text);
}

const replies = () => page.locator('[data-testid="reply"]');
const costs = () => page.locator('[data-testid="reply-cost"]');

async function send(prompt: string, limit: number) {
  await page.getByLabel("Reply limit").selectOption(String(limit));
  await page.getByRole("textbox", { name: "Prompt" }).fill(prompt);
  await page.getByRole("textbox", { name: "Prompt" }).press("Enter");
}

describe("the demo, end to end in Chromium", () => {
  test("a reply holds prompt + limit, is charged exactly prompt + reply tokens; Stop charges what was produced; out of credit, a pack bought through the stand-in lands live", async () => {
    const conversation: ChatMessageLike[] = [{ role: "system", content: SYSTEM_PROMPT }];
    const promptTokens = () => estimateChatTokens(conversation, { model: DEMO_MODEL });

    // 0. A fresh user with the whole (small) allowance.
    await page.goto(url);
    await expect.poll(balance, { timeout: 15_000 }).toBe(QUOTA);
    await page.evaluate(() => ((window as unknown as { sameDocument: boolean }).sameDocument = true));
    await shot("01-start");

    // 1. Send a prompt: the badge shows the hold (prompt + reply limit) while the reply streams.
    const first = "What does meterkit do?";
    conversation.push({ role: "user", content: first });
    const held = promptTokens() + 300;
    await page.getByRole("button", { name: first }).click();
    await page.locator('[data-testid="balance"][data-held]').waitFor({ timeout: 10_000 });
    const heldText = (await page.locator('[data-testid="balance"] .mk-badge-held').textContent()) ?? "";
    expect(Number(/([\d,]+)/.exec(heldText)?.[1]?.replace(/,/g, ""))).toBe(held);
    expect(await balance()).toBe(QUOTA - held);
    await shot("02-streaming-held");

    // 2. The reply ends: the balance dropped by exactly prompt + reply tokens, the rest came back.
    await textOf(costs().first(), "Charged", 20_000);
    const reply1 = (await replies().first().textContent())!;
    conversation.push({ role: "assistant", content: reply1 });
    const charged1 = estimateChatTokens(conversation.slice(0, 2), { model: DEMO_MODEL }) + countTokens(reply1, { model: DEMO_MODEL });
    await expect.poll(balance, { timeout: 10_000 }).toBe(QUOTA - charged1);
    await page.locator('[data-testid="balance"][data-held]').waitFor({ state: "detached" });
    expect(await costs().first().getAttribute("data-charged")).toBe(String(charged1));
    await shot("03-reply-charged");

    // 3. Stop mid-reply: charged the prompt and the words produced, not the reply limit.
    const second = "Write a long story about a metered model";
    conversation.push({ role: "user", content: second });
    const prompt2 = promptTokens();
    const planned = plannedReply({ model: DEMO_MODEL, messages: conversation, max_tokens: 600 }).pieces;
    const before2 = QUOTA - charged1;
    await send(second, 600);
    await expect.poll(async () => ((await replies().nth(1).textContent()) ?? "").split(/\s+/).length, { timeout: 15_000 }).toBeGreaterThan(20);
    await page.getByRole("button", { name: "Stop" }).click();
    await textOf(costs().nth(1), "Stopped · charged", 10_000);
    const shown = (await replies().nth(1).textContent())!;
    const charged2 = Number(await costs().nth(1).getAttribute("data-charged"));
    // The server may have produced words the page had not drawn yet when Stop landed (more of
    // them on a loaded machine): the charge is the prompt plus some prefix of the reply at
    // least as long as what was shown, and shorter than the whole reply.
    const shownPieces = planned.findIndex((_, i) => planned.slice(0, i + 1).join("") === shown) + 1;
    expect(shownPieces).toBeGreaterThan(20);
    const candidates = Array.from({ length: planned.length - shownPieces }, (_, i) => shownPieces + i);
    const produced = candidates.find((k) => prompt2 + countTokens(planned.slice(0, k).join(""), { model: DEMO_MODEL }) === charged2);
    expect(produced, `charged ${charged2} = prompt ${prompt2} + the tokens of the first k words, k ≥ ${shownPieces}`).toBeDefined();
    expect(produced!).toBeLessThan(planned.length);
    expect(charged2).toBeLessThan(prompt2 + 600);
    await expect.poll(balance, { timeout: 10_000 }).toBe(before2 - charged2);
    await shot("04-stopped");
    conversation.push({ role: "assistant", content: shown });

    // 4. Spend the rest: replies until the next prompt's hold does not fit. The dialog opens by itself.
    const dialog = page.getByRole("dialog");
    for (let i = 0; i < 4 && !(await dialog.isVisible()); i++) {
      const n = await costs().count();
      await send("Tell me another long story", 600);
      await dialog.or(costs().nth(n).filter({ hasText: "Charged" })).waitFor({ timeout: 20_000 });
    }
    expect(await dialog.isVisible()).toBe(true);
    expect(await dialog.getByRole("heading").textContent()).toBe("Tokens limit reached");
    expect(await page.locator(".demo-notice").textContent()).toContain("Not enough tokens");
    const exhausted = await balance();
    expect(exhausted).toBeLessThan(1000);
    const buy = dialog.getByRole("button", { name: /Starter pack/ });
    expect(await buy.textContent()).toBe("Starter pack · 10,000 tokens · $5.00");
    await shot("05-limit-dialog");

    // 5. Buy a pack: checkout (the stand-in) opens in a new tab; Pay sends the signed webhook.
    const [checkout] = await Promise.all([page.waitForEvent("popup"), buy.click()]);
    await checkout.waitForLoadState();
    await checkout.getByText("not Stripe").waitFor();
    await shot("06-checkout", checkout);
    await checkout.getByRole("button", { name: "Pay" }).click();
    await checkout.waitForURL(/checkout=success|\/$/);

    // 6. The first tab's badge rises by the pack, live: no reload, the dialog closes.
    await expect.poll(balance, { timeout: 10_000 }).toBe(exhausted + PACK);
    expect(await page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument)).toBe(true);
    await dialog.waitFor({ state: "hidden" });
    await page.getByText(`+${PACK.toLocaleString("en-US")} tokens added`).waitFor();
    await shot("07-pack-landed");
    await checkout.close();

    // 7. The usage view lists the ledger entries behind all this, and the chart has today's bar.
    await page.getByRole("link", { name: "Usage" }).click();
    const kinds = page.locator("table.demo-entries tbody tr");
    await kinds.first().waitFor();
    expect(await kinds.first().getAttribute("data-kind")).toBe("grant");
    const seen = new Set(await kinds.evaluateAll((rows) => rows.map((r) => r.getAttribute("data-kind"))));
    expect([...seen].sort()).toEqual(["commit", "grant", "refund", "reserve"]);
    expect(Number(await page.locator(".demo-chart-bar-today").getAttribute("height"))).toBeGreaterThan(0);
    await shot("08-usage");
  }, 120_000);

  test("the simulated model speaks the OpenAI Responses and Anthropic Messages formats too; each reply is metered by its wrapper and moves the balance", async () => {
    for (const [i, shape] of ["OpenAI Responses", "Anthropic Messages"].entries()) {
      // A fresh page: a fresh conversation of the system prompt and one question.
      await page.goto(url);
      await expect.poll(balance, { timeout: 15_000 }).toBeGreaterThan(400);
      const before = await balance();
      await page.getByLabel("Model API").selectOption({ label: shape });
      const prompt = "Write a poem";
      await send(prompt, 300);
      await textOf(costs().first(), "Charged", 20_000);
      const reply = (await replies().first().textContent())!;
      expect(reply).toBe(plannedReply({ model: DEMO_MODEL, messages: [{ role: "user", content: prompt }], max_tokens: 300 }).pieces.join(""));
      const conversation: ChatMessageLike[] = [{ role: "system", content: SYSTEM_PROMPT }, { role: "user", content: prompt }];
      const charged = estimateChatTokens(conversation, { model: DEMO_MODEL }) + countTokens(reply, { model: DEMO_MODEL });
      expect(await costs().first().getAttribute("data-charged")).toBe(String(charged));
      await expect.poll(balance, { timeout: 10_000 }).toBe(before - charged);
      await shot(`09-shape-${i + 1}`);
    }
  }, 90_000);
});
