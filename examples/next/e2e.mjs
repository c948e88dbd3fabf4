// The example as a user sees it: `next start` on the production build, real Chromium, a real
// PostgreSQL. The page shows the live balance; a question is charged and the badge follows over
// Server-Sent Events; a question the balance cannot cover gets 402 and the limit dialog opens.
//
//   npm test   (next build, then this)
// DATABASE_URL: use that database; else an embedded PostgreSQL from meterkit/testing.
// CHROMIUM_PATH: the browser (default /usr/bin/chromium; playwright-core downloads none).
import { spawn } from "node:child_process";
import { chromium } from "playwright-core";
import { freePort, startEmbeddedPostgres } from "meterkit/testing";

const started = performance.now();
const seconds = () => ((performance.now() - started) / 1000).toFixed(1);
const QUOTA = 1000;

const postgres = process.env.DATABASE_URL ? null : await startEmbeddedPostgres({ settings: { fsync: "off", synchronous_commit: "off" } });
const port = await freePort();
const origin = `http://127.0.0.1:${port}`;
const server = spawn(process.execPath, ["node_modules/next/dist/bin/next", "start", "-p", String(port), "-H", "127.0.0.1"], {
  env: {
    ...process.env,
    DATABASE_URL: process.env.DATABASE_URL ?? postgres.url,
    // A fresh user each run, so a reused DATABASE_URL starts from a full allowance.
    EXAMPLE_QUOTA: String(QUOTA),
    NEXT_TELEMETRY_DISABLED: "1",
  },
  stdio: ["ignore", "pipe", "pipe"],
});
let serverLog = "";
server.stdout.on("data", (c) => (serverLog += c));
server.stderr.on("data", (c) => (serverLog += c));

let browser;
try {
  await waitForServer();
  console.log(`e2e: next start answered after ${seconds()} s`);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  const page = await browser.newPage();
  const pageErrors = [];
  page.on("pageerror", (err) => pageErrors.push(err.message));
  // Failed requests are checked by URL below ("Failed to load resource" in the console names none).
  page.on("console", (msg) => msg.type() === "error" && !msg.text().startsWith("Failed to load resource") && pageErrors.push(msg.text()));
  // Every answer ≥ 400 but the expected ones: the chat route's 402, the favicon the example
  // lacks, and GET /packs, which is 404 while no Stripe keys are set (no packs on sale).
  const expected = new Set(["402 /api/chat", "404 /favicon.ico", ...(process.env.STRIPE_SECRET_KEY ? [] : ["404 /api/meter/packs"])]);
  page.on("response", (res) => {
    const seen = `${res.status()} ${new URL(res.url()).pathname}`;
    if (res.status() >= 400 && !expected.has(seen)) pageErrors.push(seen);
  });
  page.setDefaultTimeout(30_000);
  await page.goto(origin);

  // 1. The live balance: the full allowance, loaded by the kit from /api/meter/usage.
  const badge = page.getByRole("status").filter({ hasText: "tokens" }).first();
  await badge.filter({ hasText: "1,000" }).waitFor();
  console.log(`e2e: balance shown: ${await badge.textContent()}`);

  // 2. A question is charged; the badge follows over the usage stream.
  await page.getByRole("button", { name: "Ask", exact: true }).click();
  await page.getByTestId("status").filter({ hasText: "answered" }).waitFor();
  await page.waitForFunction(
    (quota) => {
      const text = [...document.querySelectorAll('[role="status"]')].map((e) => e.textContent ?? "").find((t) => t.includes("tokens")) ?? "";
      const n = Number((/([\d,]+)\s*tokens/.exec(text)?.[1] ?? "").replace(/,/g, ""));
      return n > 0 && n < quota;
    },
    QUOTA,
  );
  console.log(`e2e: after one question: ${await badge.textContent()}`);

  // 3. A question the balance cannot cover: 402 limit_reached, and the dialog opens.
  await page.getByRole("button", { name: "Ask for a very long answer" }).click();
  await page.getByTestId("status").filter({ hasText: "failed 402" }).waitFor();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor({ state: "visible" });
  console.log(`e2e: limit dialog: ${(await dialog.textContent())?.slice(0, 80)}…`);

  if (pageErrors.length > 0) throw new Error(`errors in the page:\n${pageErrors.join("\n")}`);
  console.log(`e2e: passed in ${seconds()} s`);
} catch (err) {
  console.error(`e2e: FAILED after ${seconds()} s\n--- next start output ---\n${serverLog}\n---`);
  throw err;
} finally {
  await browser?.close();
  server.kill("SIGTERM");
  await new Promise((r) => (server.exitCode !== null ? r() : server.once("exit", r)));
  await postgres?.stop();
}

async function waitForServer() {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`next start exited with ${server.exitCode}`);
    try {
      const res = await fetch(`${origin}/api/meter/usage`);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error("next start did not answer within 60 s");
}
