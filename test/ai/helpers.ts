import { randomUUID } from "node:crypto";
import { freshDatabase } from "../helpers/db.js";
import { startOpenAIStandin, type OpenAIStandin } from "../helpers/openai-standin.js";
import { createMeter, type Meter } from "../../src/server/index.js";
import { DEFAULT_PRICES } from "../../src/core/prices.js";

/** A real meter on a fresh database plus the OpenAI stand-in, for the wrapper tests. */
export interface AiFixture {
  meter: Meter;
  standin: OpenAIStandin;
  /** A new user on the free plan (20 000 tokens a month). */
  freeUser(): Promise<string>;
  /** A new user on the pro plan (500 cents). */
  proUser(): Promise<string>;
  /** A counter's numbers for a user. */
  counter(userId: string, key: "tokens" | "credits"): Promise<{ used: number; held: number; remaining: number | null }>;
  close(): Promise<void>;
}

export async function setupAiFixture(): Promise<AiFixture> {
  const db = await freshDatabase();
  const meter = createMeter({
    database: db.url,
    plans: {
      free: { limits: { tokens: { quota: 20_000, unit: "tokens", period: "month" } } },
      pro: { limits: { credits: { quota: 500, unit: "cents" } } },
    },
    // A cents meter without `price`: amounts are cents, and commit({ usage }) prices tokens per model.
    meters: { "llm.tokens": { counter: "tokens" }, "llm.cost": { counter: "credits" } },
    prices: DEFAULT_PRICES,
    defaultPlan: "free",
    holdTtl: 60_000,
    sweepInterval: 0,
  });
  await meter.migrate();
  const standin = await startOpenAIStandin();
  const user = async (planId: string) => {
    const userId = "u_" + randomUUID();
    await meter.upsertSubscription({ userId, planId });
    return userId;
  };
  return {
    meter,
    standin,
    freeUser: () => user("free"),
    proUser: () => user("pro"),
    async counter(userId, key) {
      const usage = await meter.usage(userId);
      const c = usage.counters.find((x) => x.key === key);
      if (!c) throw new Error(`no counter ${key}`);
      return { used: c.used, held: c.held, remaining: c.remaining };
    },
    async close() {
      await standin.close();
      await meter.close();
      await db.drop();
    },
  };
}
