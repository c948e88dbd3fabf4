import { assertAmount, assertId } from "../../core/amounts.js";
import { MeterError } from "../../core/errors.js";
import type { CommitOptions, CommitResult, ReleaseResult } from "../../core/types.js";
import { strictObject, tokenUsage } from "../validate.js";
import { callLedger, type LedgerContext } from "./context.js";

/**
 * Turns a hold into usage and frees the rest in the same transaction. `actual` above the hold
 * is recorded as overage. A second commit returns the first result; committing a released or
 * expired hold is a `conflict`.
 */
export async function commit(ctx: LedgerContext, reservationId: string, options?: CommitOptions): Promise<CommitResult> {
  const id = assertId(reservationId, "reservationId");
  const o = strictObject(options, "", ["actual", "usage"]);
  if (o.actual !== undefined && o.usage !== undefined) {
    throw new MeterError("invalid_request", "Pass either actual or usage, not both.", { field: "actual" });
  }
  const usage = o.usage === undefined ? null : JSON.stringify(tokenUsage(o.usage));
  if (o.actual !== null && typeof o.actual === "object") {
    // Per part of a multi-counter reservation: meter key (or counter key) → amount.
    const actual: Record<string, number> = {};
    for (const [k, v] of Object.entries(o.actual)) actual[assertId(k, "actual key")] = assertAmount(v, `actual.${k}`, { allowZero: true });
    return callLedger<CommitResult>(ctx, "op_resolve_multi", [id, false, JSON.stringify(actual), usage]);
  }
  const actual = o.actual === undefined ? null : assertAmount(o.actual, "actual", { allowZero: true });
  return callLedger<CommitResult>(ctx, "op_resolve", [id, false, actual, usage]);
}

/** Frees a hold entirely (the call failed). A second release returns the first result. */
export async function release(ctx: LedgerContext, reservationId: string): Promise<ReleaseResult> {
  const id = assertId(reservationId, "reservationId");
  return callLedger<ReleaseResult>(ctx, "op_resolve", [id, true, null, null]);
}
