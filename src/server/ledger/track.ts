import { assertAmount, assertId } from "../../core/amounts.js";
import { MeterError } from "../../core/errors.js";
import { fineCostOfTokens, priceOf } from "../../core/pricing.js";
import type { TrackOptions, TrackResult } from "../../core/types.js";
import { refuseConcurrency, resolveMeter } from "../config.js";
import { fingerprint, metadataJson, optionalId, optionalString, strictObject } from "../validate.js";
import { callLedger, type LedgerContext } from "./context.js";

/**
 * Records usage without a hold; a `.refund` key gives `amount` back (never more than this
 * period's usage). On a meter with a `price`, `amount` is tokens, priced exactly with the
 * counter's carried remainder.
 */
export async function track(
  ctx: LedgerContext,
  userId: string,
  meterKey: string,
  amount: number,
  options?: TrackOptions,
): Promise<TrackResult> {
  const user = assertId(userId, "userId");
  const target = resolveMeter(ctx.config, meterKey);
  refuseConcurrency(ctx.config, target.counter, "tracks");
  const n = assertAmount(amount, "amount");
  const o = strictObject(options, "", ["reservationId", "idempotencyKey", "model", "metadata"]);
  const key = optionalId(o.idempotencyKey, "idempotencyKey");
  const holdId = optionalId(o.reservationId, "reservationId");
  const model = optionalString(o.model, "model");
  const metadata = metadataJson(o.metadata);
  let fine: string | null = null;
  if (target.definition.price) {
    if (!model) throw new MeterError("invalid_request", `Meter "${target.meterKey}" prices tokens: pass { model }.`, { field: "model" });
    const price = priceOf(ctx.config.prices, model);
    const f = fineCostOfTokens(n, price[target.definition.price] ?? price.input);
    fine = (target.refund ? -f : f).toString();
  }
  const fp = key ? fingerprint("track", target.meterKey, n, holdId, model, metadata) : "";
  return callLedger<TrackResult>(ctx, "op_track", [
    user, target.counter, target.meterKey, target.refund ? -n : n, fine, key, fp, holdId, model, metadata,
  ], user);
}
