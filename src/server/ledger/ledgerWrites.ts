import type { Meter } from "../createMeter.js";
import type { LedgerContext } from "./context.js";
import { adjust, grant } from "./grant.js";
import { commit, release } from "./resolve.js";
import { reserve, reserveMulti } from "./reserve.js";
import { upsertSubscription } from "./subscription.js";
import { track } from "./track.js";

/** The meter methods that write the ledger. */
export type LedgerWrites = Pick<Meter, "reserve" | "commit" | "release" | "track" | "grant" | "adjust" | "upsertSubscription">;

/**
 * The writing methods of a meter over one ledger context: `createMeter` builds the meter's own
 * from its context, the HTTP handler a keyed request's from a context that carries the
 * request's `Idempotency-Key` claim (`claimedMeter`). One table, so both always agree.
 */
export function ledgerWrites(ledger: LedgerContext): LedgerWrites {
  return {
    reserve: ((userId: string, meterKey: string | Record<string, number>, amount?: unknown, o?: unknown) =>
      typeof meterKey === "string"
        ? reserve(ledger, userId, meterKey, amount as number, o as Parameters<typeof reserve>[4])
        : reserveMulti(ledger, userId, meterKey, amount as Parameters<typeof reserveMulti>[3])) as Meter["reserve"],
    commit: (id, o) => commit(ledger, id, o),
    release: (id) => release(ledger, id),
    track: (userId, meterKey, amount, o) => track(ledger, userId, meterKey, amount, o),
    grant: (userId, counterKey, amount, o) => grant(ledger, userId, counterKey, amount, o),
    adjust: (userId, counterKey, delta, o) => adjust(ledger, userId, counterKey, delta, o),
    upsertSubscription: (input) => upsertSubscription(ledger, input),
  };
}
