import type { LedgerChaosOptions } from "./runLedgerChaos.js";

/** The figures of one run of the suite: the short form runs in `npm test`, the long one in `npm run soak`. */
export interface Sizes {
  ledger: LedgerChaosOptions;
  /** fast-check runs per property. */
  fuzzRuns: number;
  /** Duplicate deliveries of one webhook event in the flood. */
  webhookFlood: number;
  /** Timeout of one fuzz test, in ms. */
  fuzzTimeout: number;
  /** fast-check runs per property of the money model (`moneyModel.test.ts`). */
  moneyRuns: number;
}

export const SHORT: Sizes = {
  ledger: { workers: 4, durationMs: 25_000, faultEveryMs: 2_000, hotUsers: 2, spreadUsers: 12, downMs: 800, recoveryMs: 5_000, seed: 20_261_127 },
  fuzzRuns: 60,
  webhookFlood: 40,
  fuzzTimeout: 60_000,
  moneyRuns: 13,
};

export const LONG: Sizes = {
  ledger: { workers: 8, durationMs: Number(process.env.SOAK_MINUTES ?? 10) * 60_000, faultEveryMs: 3_000, hotUsers: 3, spreadUsers: 64, downMs: 2_000, recoveryMs: 10_000, seed: Date.now() % 1_000_000 },
  fuzzRuns: 2_000,
  webhookFlood: 500,
  fuzzTimeout: 1_800_000,
  moneyRuns: 300,
};

/** `npm run soak` sets METERKIT_SOAK=1: the same tests with the long figures. */
export const SIZES: Sizes = process.env.METERKIT_SOAK ? LONG : SHORT;
