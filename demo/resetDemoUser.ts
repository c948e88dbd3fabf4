import type { Meter } from "../src/server/index.js";

/**
 * Puts a user back to the start: no usage, no holds, no purchased credits, a fresh
 * subscription to `planId`. Demo-only: meterkit's ledger is append-only on purpose, and a real
 * app erases a user only on a right-to-erasure request (use `meter.adjust` or a grant to
 * correct a balance). `eraseUser` takes the ledger's locks, so it cannot interleave with a
 * reserve or commit, and announces the change so open pages update live.
 */
export async function resetDemoUser(meter: Meter, userId: string, planId: string): Promise<void> {
  await meter.eraseUser(userId);
  // A new subscription row takes a new, larger version, so clients accept the reset usage.
  await meter.upsertSubscription({ userId, planId });
}
