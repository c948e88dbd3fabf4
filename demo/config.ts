import type { PlanDefinition } from "../src/core/index.js";

export interface DemoSettings {
  /** Monthly token allowance of the demo plan (`DEMO_QUOTA`). Default 20 000. */
  quota: number;
  /** Mean milliseconds per streamed word (`DEMO_WORD_MS`). Default 35, about 35 tokens a second. */
  wordMs: number;
}

/** Reads the demo's settings from the environment, refusing nonsense with a message. */
export function demoSettings(env: NodeJS.ProcessEnv = process.env): DemoSettings {
  return {
    quota: wholeNumber(env.DEMO_QUOTA, 20_000, "DEMO_QUOTA"),
    wordMs: wholeNumber(env.DEMO_WORD_MS, 35, "DEMO_WORD_MS"),
  };
}

function wholeNumber(raw: string | undefined, fallback: number, name: string): number {
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a whole number ≥ 0, got ${JSON.stringify(raw)}.`);
  return n;
}

/** The demo plan: one monthly token allowance. */
export function demoPlans(quota: number): Record<string, PlanDefinition> {
  return {
    demo: { label: "Demo plan", limits: { tokens: { label: "Tokens", unit: "tokens", quota, period: "month" } } },
  };
}

/** Credit packs on sale in the limit dialog (prices in cents). */
export const DEMO_PACKS = [
  { id: "starter", label: "Starter pack", counter: "tokens", amount: 10_000, price: { amount: 500, currency: "usd" } },
  { id: "plus", label: "Plus pack", counter: "tokens", amount: 50_000, price: { amount: 2000, currency: "usd" } },
];
