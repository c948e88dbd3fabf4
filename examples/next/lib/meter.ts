// The app's one meter, created on first use and shared by every route of this server process.
import { createMeter, type Meter } from "meterkit/server";
import Stripe from "stripe";

/** Who is signed in. A real app reads its session here (cookie, JWT…); the example has one user. */
export const USER_ID = "u_example";

const shared = globalThis as typeof globalThis & { exampleMeter?: Promise<Meter> };

export function getMeter(): Promise<Meter> {
  shared.exampleMeter ??= open();
  return shared.exampleMeter;
}

async function open(): Promise<Meter> {
  const meter = createMeter({
    database: await databaseUrl(),
    plans: {
      free: { label: "Free", limits: { tokens: { label: "Tokens", unit: "tokens", quota: Number(process.env.EXAMPLE_QUOTA ?? 20_000), period: "month" } } },
    },
    meters: { "llm.tokens": { counter: "tokens" } },
    defaultPlan: "free",
    // Credit packs on sale in the limit dialog, with Stripe test keys; without them GET /packs is 404.
    ...(process.env.STRIPE_SECRET_KEY && process.env.STRIPE_WEBHOOK_SECRET
      ? {
          stripe: {
            client: new Stripe(process.env.STRIPE_SECRET_KEY),
            webhookSecret: process.env.STRIPE_WEBHOOK_SECRET,
            packs: [{ id: "starter", label: "Starter pack", counter: "tokens", amount: 10_000, price: { amount: 500, currency: "usd" } }],
          },
        }
      : {}),
  });
  await meter.migrate();
  return meter;
}

/** `DATABASE_URL`, or a throwaway PostgreSQL from npm (meterkit/testing) for a quick try. */
async function databaseUrl(): Promise<string> {
  if (process.env.DATABASE_URL) return process.env.DATABASE_URL;
  const { startEmbeddedPostgres } = await import("meterkit/testing");
  const postgres = await startEmbeddedPostgres();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => void postgres.stop().finally(() => process.exit(0)));
  }
  console.log(`meterkit example: no DATABASE_URL, using an embedded PostgreSQL at ${postgres.url}`);
  return postgres.url;
}
