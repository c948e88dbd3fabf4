import { randomUUID } from "node:crypto";
import { assertAmount, assertId } from "../../core/amounts.js";
import { ceilFine } from "../../core/pricing.js";
import type { ReserveOptions, ReserveResult } from "../../core/types.js";
import { MeterError } from "../../core/errors.js";
import { finePerToken, resolveMeter } from "../config.js";
import { fingerprint, metadataJson, optionalId, optionalString, strictObject, ttlMs } from "../validate.js";
import { callLedger, type LedgerContext } from "./context.js";

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

  let held = tokens;
  let tokenPrices: Record<string, string> | null = null;
  if (target.definition.price) {
    if (!model) throw new MeterError("invalid_request", `Meter "${target.meterKey}" prices tokens: pass { model }.`, { field: "model" });
    const fine = finePerToken(ctx.config.prices, model);
    tokenPrices = { ...fine, unit: fine[target.definition.price] };
    // Holds round up: never reserve less than the call can cost.
    held = Math.max(1, ceilFine(BigInt(tokens) * BigInt(tokenPrices.unit!)));
  } else if (target.unit === "cents" && model && Object.prototype.hasOwnProperty.call(ctx.config.prices, model)) {
    tokenPrices = finePerToken(ctx.config.prices, model);
  }
  const fp = key ? fingerprint("reserve", target.meterKey, tokens, ttl, model, metadata) : "";
  return callLedger<ReserveResult>(ctx, "op_reserve", [
    user, target.counter, target.meterKey, held, ttl, key, fp,
    "rsv_" + randomUUID().replace(/-/g, ""), model, tokenPrices && JSON.stringify(tokenPrices), metadata,
  ], user);
}
