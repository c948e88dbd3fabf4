import { assertAmount, assertId } from "../../core/amounts.js";
import { ceilFine } from "../../core/pricing.js";
import type { MultiReserveResult, ReserveOptions, ReserveResult } from "../../core/types.js";
import { MeterError } from "../../core/errors.js";
import { finePerToken, resolveMeter, type MeterTarget } from "../config.js";
import { fingerprint, metadataJson, optionalId, optionalString, strictObject, ttlMs } from "../validate.js";
import { callLedger, type LedgerContext } from "./context.js";
import { newReservationId } from "./reservationId.js";

/**
 * Holds `amount` for a call about to run. On a meter with a `price`, `amount` is tokens and
 * the hold is their price in cents, rounded up; a `cents` counter also keeps the model's
 * prices on the hold so that `commit({ usage })` can price the real token counts exactly.
 */
export async function reserve(
  ctx: LedgerContext,
  userId: string,
  meterKey: string,
  amount: number,
  options?: ReserveOptions,
): Promise<ReserveResult> {
  const user = assertId(userId, "userId");
  const target = resolveMeter(ctx.config, meterKey);
  if (target.refund) throw new MeterError("invalid_request", "Reserve on a meter key, not on a .refund key.", { field: "meterKey" });
  const tokens = assertAmount(amount, "amount");
  const o = strictObject(options, "", ["model", "ttl", "idempotencyKey", "metadata"]);
  const ttl = ttlMs(o.ttl, ctx.holdTtl);
  const key = optionalId(o.idempotencyKey, "idempotencyKey");
  const model = optionalString(o.model, "model");
  const metadata = metadataJson(o.metadata);
  const { held, tokenPrices } = holdAmount(ctx, target, tokens, model);
  const fp = key ? fingerprint("reserve", target.meterKey, tokens, ttl, model, metadata) : "";
  return callLedger<ReserveResult>(ctx, "op_reserve", [
    user, target.counter, target.meterKey, held, ttl, key, fp,
    newReservationId(user), model, tokenPrices && JSON.stringify(tokenPrices), metadata,
  ], user);
}

/** The amount a hold of `tokens` takes on its counter, and the prices it keeps for commit. */
function holdAmount(ctx: LedgerContext, target: MeterTarget, tokens: number, model: string | null): { held: number; tokenPrices: Record<string, string> | null } {
  if (target.definition.price) {
    if (!model) throw new MeterError("invalid_request", `Meter "${target.meterKey}" prices tokens: pass { model }.`, { field: "model" });
    const fine = finePerToken(ctx.config.prices, model);
    const tokenPrices = { ...fine, unit: fine[target.definition.price] };
    // Holds round up: never reserve less than the call can cost.
    return { held: Math.max(1, ceilFine(BigInt(tokens) * BigInt(tokenPrices.unit!))), tokenPrices };
  }
  if (target.unit === "cents" && model && Object.prototype.hasOwnProperty.call(ctx.config.prices, model)) {
    return { held: tokens, tokenPrices: finePerToken(ctx.config.prices, model) };
  }
  return { held: tokens, tokenPrices: null };
}

/**
 * Holds amounts on several counters at once, all or nothing, under one reservation id:
 * `amounts` maps meter keys to amounts (each as `reserve` would take it), at most one meter
 * per counter. The locks of every counter are taken in a fixed order (no deadlock); a denial
 * names the first counter that cannot hold its amount and holds nothing. `commit` and
 * `release` of the id apply to every part.
 */
export async function reserveMulti(
  ctx: LedgerContext,
  userId: string,
  amounts: Record<string, number>,
  options?: ReserveOptions,
): Promise<MultiReserveResult> {
  const user = assertId(userId, "userId");
  if (amounts === null || typeof amounts !== "object" || Array.isArray(amounts) || Object.keys(amounts).length === 0) {
    throw new MeterError("invalid_request", "reserve: pass a meter key and an amount, or an object of meter key → amount.", { field: "amount" });
  }
  const o = strictObject(options, "", ["model", "ttl", "idempotencyKey", "metadata"]);
  const ttl = ttlMs(o.ttl, ctx.holdTtl);
  const key = optionalId(o.idempotencyKey, "idempotencyKey");
  const model = optionalString(o.model, "model");
  const metadata = metadataJson(o.metadata);
  const parts: { counter: string; meter: string; amount: number; tokenPrices: Record<string, string> | null; usagePart: string | null }[] = [];
  for (const [meterKey, amount] of Object.entries(amounts).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const target = resolveMeter(ctx.config, meterKey);
    if (target.refund) throw new MeterError("invalid_request", "Reserve on a meter key, not on a .refund key.", { field: "meterKey" });
    if (parts.some((p) => p.counter === target.counter)) {
      throw new MeterError("invalid_request", `Meters "${parts.find((p) => p.counter === target.counter)!.meter}" and "${meterKey}" both charge counter "${target.counter}": hold it once.`, { field: "meterKey", counter: target.counter });
    }
    const { held, tokenPrices } = holdAmount(ctx, target, assertAmount(amount, `amount.${meterKey}`), model);
    const d = target.definition;
    const usagePart = d.counts ?? (d.price === "output" ? "output" : d.price ? "input" : null);
    parts.push({ counter: target.counter, meter: target.meterKey, amount: held, tokenPrices, usagePart });
  }
  const fp = key ? fingerprint("reserve", JSON.stringify(parts.map((p) => [p.meter, p.amount])), ttl, model, metadata) : "";
  return callLedger<MultiReserveResult>(ctx, "op_reserve_multi", [
    user, JSON.stringify(parts), ttl, key, fp, newReservationId(user), model, metadata,
  ], user);
}
