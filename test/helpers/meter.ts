import { createMeter, type CreateMeterOptions, type Meter } from "../../src/server/index.js";
import { freshDatabase } from "./db.js";

export const TEST_PRICES = {
  "gpt-4o-mini": { input: "0.15", cachedInput: "0.075", output: "0.60" },
  "gpt-4o": { input: "2.50", cachedInput: "1.25", output: "10.00" },
};

/** Plans most ledger tests use: a monthly token quota, a cents counter, a strict counter. */
export const TEST_PLANS: CreateMeterOptions["plans"] = {
  free: { limits: { tokens: { quota: 1000, unit: "tokens", period: "month" } } },
  pro: {
    limits: {
      tokens: { quota: 100_000, unit: "tokens", period: "month", anchor: "subscription_start" },
      credits: { quota: 500, unit: "cents", period: "month" },
      images: { quota: 10, unit: "images", period: "day", overage: "reject" },
    },
  },
  lifetime: { limits: { tokens: { quota: 50, period: "none" } } },
};

export interface TestMeter {
  meter: Meter;
  url: string;
  cleanup(): Promise<void>;
}

/** A migrated meter on its own fresh database. */
export async function testMeter(overrides: Partial<CreateMeterOptions> = {}): Promise<TestMeter> {
  const db = await freshDatabase();
  const meter = createMeter({
    database: db.url,
    plans: TEST_PLANS,
    meters: {
      "llm.tokens": { counter: "tokens" },
      "llm.cost": { counter: "credits", price: "input" },
      "llm.output_cost": { counter: "credits", price: "output" },
    },
    prices: TEST_PRICES,
    sweepInterval: 0,
    ...overrides,
  });
  await meter.migrate();
  return {
    meter,
    url: db.url,
    async cleanup() {
      await meter.close();
      await db.drop();
    },
  };
}
