import type pg from "pg";
import { query } from "./db.js";

/**
 * Announces balance changes on the meter's NOTIFY channel after their transaction committed.
 * Changes are coalesced: ids collected while one NOTIFY statement is in flight go out together
 * in the next, so a burst of N commits costs a handful of statements, not N.
 *
 * Why not NOTIFY inside the ledger transaction: Postgres serialises the commits of all
 * notifying transactions behind one database-wide lock held through the WAL flush, which
 * capped the ledger at one commit per fsync (see the closing note of the foundation issue).
 * The price is that a process dying between commit and announce loses that one live update;
 * live streams therefore also refresh on their heartbeat.
 */
export interface Notifier {
  /** Queue an announcement that `userId`'s balances changed. */
  announce(userId: string): void;
  /** Resolves when everything queued so far has been sent (or failed). */
  flush(): Promise<void>;
}

export function createNotifier(pool: pg.Pool, channel: string): Notifier {
  let pending = new Set<string>();
  let inFlight: Promise<void> | null = null;
  let scheduled = false;

  const send = async (): Promise<void> => {
    while (pending.size > 0) {
      const batch = [...pending];
      pending = new Set();
      try {
        // Bounded like every ledger call: a dark network must not stall the announcements (or close()).
        // No WAL flush wait for this transaction (set_config with is_local = true): a notification
        // is delivered at commit whether or not its commit record reached the disk, and a
        // notification lost in a crash costs one heartbeat, not money. Without it every round of
        // announcements paid one more fsync on the ledger's disk.
        await query(
          pool,
          "SELECT pg_notify($1, u) FROM (SELECT set_config('synchronous_commit', 'off', true)) AS off, unnest($2::text[]) AS u",
          [channel, batch],
          "meterkit_notify",
        );
      } catch {
        // Best effort: the balance itself is committed; streams catch up on their next refresh.
      }
    }
  };
  const kick = () => {
    scheduled = false;
    if (inFlight) return;
    inFlight = send().finally(() => {
      inFlight = null;
      if (pending.size > 0) kick();
    });
  };
  return {
    announce(userId) {
      pending.add(userId);
      if (!scheduled && !inFlight) {
        scheduled = true;
        setImmediate(kick);
      }
    },
    async flush() {
      while (scheduled || inFlight || pending.size > 0) {
        if (!inFlight && !scheduled) kick();
        await (inFlight ?? new Promise((r) => setImmediate(r)));
      }
    },
  };
}
