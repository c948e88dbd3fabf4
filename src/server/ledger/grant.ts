import { randomUUID } from "node:crypto";
import { assertAmount, assertId } from "../../core/amounts.js";
import { MeterError } from "../../core/errors.js";
import type { AdjustOptions, AdjustResult, GrantOptions, GrantResult } from "../../core/types.js";
import { assertCounter, refuseConcurrency } from "../config.js";
import { fingerprint, metadataJson, optionalDate, optionalId, optionalString, strictObject } from "../validate.js";
import { callLedger, type LedgerContext } from "./context.js";

/** Adds credits that do not reset with the period. The same idempotency key grants once. */
export async function grant(
  ctx: LedgerContext,
  userId: string,
  counterKey: string,
  amount: number,
  options?: GrantOptions,
): Promise<GrantResult> {
  const user = assertId(userId, "userId");
  const counter = assertCounter(ctx.config, counterKey);
  refuseConcurrency(ctx.config, counter, "grants");
  const n = assertAmount(amount, "amount");
  const o = strictObject(options, "", ["idempotencyKey", "expiresAt", "source", "metadata"]);
  const key = optionalId(o.idempotencyKey, "idempotencyKey");
  const expires = optionalDate(o.expiresAt, "expiresAt");
  const source = optionalString(o.source, "source", 64) ?? "manual";
  const metadata = metadataJson(o.metadata);
  const fp = key ? fingerprint("grant", counter, n, expires?.toISOString() ?? null, source, metadata) : "";
  return callLedger<GrantResult>(ctx, "op_grant", [
    user, counter, n, key, fp, "grt_" + randomUUID().replace(/-/g, ""), expires, source, metadata,
  ], user);
}

/**
 * A support correction: `delta > 0` gives the user `delta` more (usage given back first, the
 * excess as a grant), `delta < 0` charges `-delta` as usage. Recorded with its reason.
 */
export async function adjust(
  ctx: LedgerContext,
  userId: string,
  counterKey: string,
  delta: number,
  options: AdjustOptions,
): Promise<AdjustResult> {
  const user = assertId(userId, "userId");
  const counter = assertCounter(ctx.config, counterKey);
  refuseConcurrency(ctx.config, counter, "adjustments");
  const d = assertAmount(delta, "delta", { allowNegative: true });
  const o = strictObject(options, "", ["reason", "idempotencyKey"]);
  const reason = optionalString(o.reason, "reason", 1000);
  if (!reason) throw new MeterError("invalid_request", "adjust needs { reason }.", { field: "reason" });
  const key = optionalId(o.idempotencyKey, "idempotencyKey");
  const fp = key ? fingerprint("adjust", counter, d, reason) : "";
  return callLedger<AdjustResult>(ctx, "op_adjust", [user, counter, d, reason, key, fp, "grt_" + randomUUID().replace(/-/g, "")], user);
}
