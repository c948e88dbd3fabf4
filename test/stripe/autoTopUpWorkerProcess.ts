// A second app server for the auto top-up kill test: a meter whose own worker charges armed
// top-ups, against DATABASE_URL and the Stripe stand-in at STRIPE_PORT. Prints {"pid"} once
// migrated; the test kills it with SIGKILL (no clean-up runs: that is the point).
import Stripe from "stripe";
import { createMeter } from "../../src/server/index.js";

const stripe = new Stripe("sk_test_standin", { host: "127.0.0.1", port: Number(process.env.STRIPE_PORT), protocol: "http", maxNetworkRetries: 0 });
const meter = createMeter({
  database: process.env.DATABASE_URL!,
  plans: JSON.parse(process.env.PLANS!),
  meters: { "llm.tokens": { counter: "tokens" } },
  defaultPlan: "free",
  sweepInterval: 0,
  autoTopUp: { interval: 50, leaseMs: Number(process.env.LEASE_MS), requestTimeoutMs: 60_000 },
  stripe: { client: stripe, webhookSecret: process.env.WEBHOOK_SECRET!, packs: JSON.parse(process.env.PACKS!), successUrl: "https://app.example.com/done", cancelUrl: "https://app.example.com/billing" },
});
await meter.migrate();
process.stdout.write(JSON.stringify({ pid: process.pid }) + "\n");
