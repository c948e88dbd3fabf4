import { fineCostOfTokens, fineCostOfUsage, type ProviderUsage } from "../core/pricing.js";
import type { ModelPrice, TokenUsage } from "../core/types.js";

/** @internal What to commit for a `cents` hold, and how close it comes. */
export interface LedgerCharge {
  /** The usage to send with `commit`: the ledger prices it with the hold's three token prices. */
  usage: Required<TokenUsage>;
  /** The exact cost of the provider's usage, in fine units (10^-16 cent). */
  exact: bigint;
  /** What the ledger will price `usage` at, in fine units: `exact`, or above it by less than one cache-read token. */
  charged: bigint;
}

/**
 * @internal The ledger prices `commit({ usage })` on a `cents` hold with three per-token prices
 * kept on the hold (the model's base input, cache-read and output prices) and rounds the sum
 * with the counter's carried remainder. It knows nothing of cache writes or long-context tiers,
 * so the real counts would be charged at the wrong price. This finds counts whose price under
 * those three prices is the exact cost: the real counts when they already are (no cache write,
 * no tier), else the real counts plus the difference expressed as extra input and cache-read
 * tokens. When the difference is not a whole number of those (an odd number of 5-minute
 * writes at 1.25×), it is rounded up by less than the price of one cache-read token, never
 * down. The carry then keeps the running total exact to the cent.
 */
export function ledgerUsage(price: ModelPrice, usage: Required<ProviderUsage>): LedgerCharge {
  const pin = fineCostOfTokens(1, price.input);
  const pc = fineCostOfTokens(1, price.cachedInput ?? price.input);
  const pout = fineCostOfTokens(1, price.output);
  const exact = fineCostOfUsage(price, usage);
  const I = BigInt(usage.inputTokens);
  const R = BigInt(usage.cachedInputTokens);
  const O = BigInt(usage.outputTokens);
  const base = (I - R) * pin + R * pc + O * pout;
  if (base === exact) return { usage: tokens(I, R, O), exact, charged: exact };
  if (exact > base) {
    const { x, y } = cover(exact - base, pin, pc);
    return { usage: tokens(I + x + y, R + y, O), exact, charged: base + x * pin + y * pc };
  }
  // Cheaper than the base prices (a custom table with cache writes below input): build it up
  // from output tokens, then input and cache reads.
  const z = pout > 0n ? min(O, exact / pout) : 0n;
  const { x, y } = cover(exact - z * pout, pin, pc);
  return { usage: tokens(x + y, y, z), exact, charged: z * pout + x * pin + y * pc };
}

/** Non-negative counts of input (`x`) and cache-read (`y`) tokens priced at least `fine`, and by less than `pc` more when `pc` > 0. */
function cover(fine: bigint, pin: bigint, pc: bigint): { x: bigint; y: bigint } {
  if (fine <= 0n) return { x: 0n, y: 0n };
  if (pc > 0n && pc < pin) {
    const x = fine / pin;
    return { x, y: ceilDiv(fine - x * pin, pc) };
  }
  if (pin > 0n) return { x: ceilDiv(fine, pin), y: 0n };
  return { x: 0n, y: pc > 0n ? ceilDiv(fine, pc) : 0n };
}

function ceilDiv(a: bigint, b: bigint): bigint {
  return (a + b - 1n) / b;
}

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

function tokens(input: bigint, cached: bigint, output: bigint): Required<TokenUsage> {
  return { inputTokens: Number(input), cachedInputTokens: Number(cached), outputTokens: Number(output) };
}
