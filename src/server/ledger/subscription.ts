import { assertAmount, assertId } from "../../core/amounts.js";
import { MeterError } from "../../core/errors.js";
import type { Subscription, SubscriptionInput, Usage } from "../../core/types.js";
import { optionalDate, optionsObject, strictObject } from "../validate.js";
import { callLedger, type LedgerContext } from "./context.js";

/**
 * Creates or changes a user's plan. `customLimits` overrides quotas per counter (the seed's
 * way of bumping a quota); `startedAt` anchors `subscription_start` periods.
 */
export async function upsertSubscription(ctx: LedgerContext, input: SubscriptionInput): Promise<Subscription> {
  const i = strictObject(input, "", ["userId", "planId", "customLimits", "startedAt"]);
  const userId = assertId(i.userId, "userId");
  const planId = assertId(i.planId, "planId");
  // Own keys only: a plan id like "constructor" must be unknown, not Object's constructor.
  const plan = Object.hasOwn(ctx.config.plans, planId) ? ctx.config.plans[planId] : undefined;
  if (!plan) throw new MeterError("not_found", `Unknown plan "${planId}".`, { planId });
  let custom: string | null = null;
  if (i.customLimits !== undefined && i.customLimits !== null) {
    const limits = optionsObject(i.customLimits, "customLimits");
    const out: Record<string, { quota: number | null }> = {};
    for (const [key, value] of Object.entries(limits)) {
      if (!Object.hasOwn(plan.limits, key)) throw new MeterError("not_found", `Plan "${planId}" has no counter "${key}".`, { counter: key, planId });
      const v = strictObject(value, `customLimits.${key}`, ["quota"]);
      // `quota: null` makes the counter unlimited for this user; a missing quota is an error.
      out[key] = { quota: v.quota === null ? null : assertAmount(v.quota, `customLimits.${key}.quota`, { allowZero: true }) };
    }
    custom = JSON.stringify(out);
  }
  const started = optionalDate(i.startedAt, "startedAt");
  return callLedger<Subscription>(ctx, "op_subscribe", [userId, planId, custom, started]);
}

/** The user's Usage (DESIGN.md's JSON) from one indexed read; a read announces no one. */
export async function usage(ctx: LedgerContext, userId: string): Promise<Usage> {
  return callLedger<Usage>(ctx, "op_usage", [assertId(userId, "userId")], null);
}

/**
 * Records expiry entries for holds past their expiry (they already stopped counting), then
 * announces every user whose holds it swept — after commit, like every ledger path.
 */
export async function sweepExpired(ctx: LedgerContext, limit = 1000): Promise<number> {
  // op_sweep takes an int: a larger limit means "all of them", not an error.
  const r = await callLedger<{ expired: number; userIds: string[] }>(ctx, "op_sweep", [Math.min(assertAmount(limit, "limit"), 2_147_483_647)]);
  for (const userId of r.userIds) ctx.announce(userId);
  return r.expired;
}
