/*
 * `npm start`: the meterkit demo. A metered chat with a simulated model, a live balance, credit
 * packs through Stripe (or its local stand-in), and a usage view. See docs/demo.md.
 *
 *   PORT=3000                   where the page is served (0: any free port)
 *   DATABASE_URL=postgres://…   your own Postgres; default: embedded Postgres in .demo-data/
 *   STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET   Stripe test mode; default: the local stand-in
 *   DEMO_QUOTA=20000            the monthly token allowance of the demo plan
 *   DEMO_WORD_MS=35             mean milliseconds per streamed word
 *   --reset                     put the demo user back to the start before serving
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createMeter, type Meter } from "../src/server/index.js";
import { buildPage, WEB_ROOT } from "./buildPage.js";
import { demoPlans, demoSettings } from "./config.js";
import { DEMO_USER } from "./constants.js";
import { createDemoApp } from "./createDemoApp.js";
import { startEmbeddedPostgres, type LocalPostgres } from "./embeddedPostgres.js";
import { demoPayments, type DemoPayments } from "./payments.js";
import { resetDemoUser } from "./resetDemoUser.js";
import { whenReady } from "./whenReady.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const PLAN = "demo";

async function main(): Promise<void> {
  const started = Date.now();
  const settings = demoSettings();
  const port = Number(process.env.PORT ?? 3000);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new Error(`PORT must be a port number, got ${JSON.stringify(process.env.PORT)}.`);
  const host = process.env.HOST ?? "127.0.0.1";

  let postgres: LocalPostgres | null = null;
  let payments: DemoPayments | null = null;
  let meter: Meter | null = null;
  // Answers 503 until the app is ready: the server listens before the meter exists.
  const gate = whenReady();
  const server = createServer(gate.listener);
  server.on("clientError", (_err, socket) => socket.destroy());

  // Ctrl-C / SIGTERM: stop taking requests, end live streams, close the ledger, stop Postgres.
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: shutting down…`);
    server.close();
    server.closeAllConnections();
    await meter?.close().catch(() => {});
    await payments?.close().catch(() => {});
    await postgres?.stop().catch(() => {});
    console.log("Stopped.");
    process.exit(0);
  };
  process.once("SIGINT", () => void shutdown("SIGINT"));
  process.once("SIGTERM", () => void shutdown("SIGTERM"));

  try {
    // 1. Postgres: yours, or an embedded one whose data survives restarts.
    let databaseUrl = process.env.DATABASE_URL;
    if (!databaseUrl) {
      postgres = await startEmbeddedPostgres(join(ROOT, ".demo-data"));
      databaseUrl = postgres.url;
    }

    // 2. The page (skipped when the build is up to date).
    const buildMs = await buildPage();
    if (buildMs !== null) console.log(`Built the page in ${(buildMs / 1000).toFixed(1)} s.`);

    // 3. Listen first: the Stripe success URL needs the port.
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve());
    });
    const actualPort = (server.address() as AddressInfo).port;
    const url = `http://${host === "127.0.0.1" || host === "0.0.0.0" || host === "::" ? "localhost" : host}:${actualPort}`;
    console.log(`Listening on ${url} (starting…)`);

    // 4. Payments, the meter, the schema, the demo user.
    payments = await demoPayments(url);
    meter = createMeter({
      database: databaseUrl,
      plans: demoPlans(settings.quota),
      meters: { "llm.tokens": { counter: "tokens" } },
      defaultPlan: PLAN,
      stripe: payments.stripe,
      // Auto top-up (off until the user turns it on, on the Usage page): an armed top-up wakes
      // the worker at once; the timer re-checks every 2 s so a crossing is never missed for long.
      autoTopUp: { interval: 2_000 },
    });
    await meter.migrate();
    if (process.argv.includes("--reset")) {
      await resetDemoUser(meter, DEMO_USER, PLAN);
      console.log("Reset the demo user.");
    } else {
      await meter.upsertSubscription({ userId: DEMO_USER, planId: PLAN });
    }

    // 5. Serve.
    gate.ready(createDemoApp({ meter, planId: PLAN, wordMs: settings.wordMs, webRoot: WEB_ROOT, payments: payments.mode }));
    const usage = await meter.usage(DEMO_USER);
    const tokens = usage.counters.find((c) => c.key === "tokens");
    console.log(
      [
        ``,
        `  meterkit demo ready in ${((Date.now() - started) / 1000).toFixed(1)} s: ${url}`,
        ``,
        `  database  ${postgres ? `embedded Postgres (data in .demo-data/)` : "DATABASE_URL"}`,
        `  payments  ${payments.mode === "stripe" ? "Stripe test mode" : `local Stripe stand-in at ${payments.standIn?.url} (no card is charged)`}`,
        `  balance   ${(tokens?.remaining ?? 0).toLocaleString("en-US")} of ${((tokens?.quota ?? 0) + (tokens?.granted ?? 0)).toLocaleString("en-US")} tokens for ${DEMO_USER}`,
        ``,
        `  Ctrl-C to stop.`,
        ``,
      ].join("\n"),
    );
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    console.error(err instanceof Error ? err.message : err);
    if (code === "EADDRINUSE") console.error(`Port ${port} is taken: start with PORT=<another port> npm start (PORT=0 picks a free one).`);
    stopping = true;
    server.close();
    await meter?.close().catch(() => {});
    await payments?.close().catch(() => {});
    await postgres?.stop().catch(() => {});
    process.exit(1);
  }
}

void main();
