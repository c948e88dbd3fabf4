import type { Meter } from "../createMeter.js";
import { internalsOf } from "../internals.js";
import type { LedgerClaim } from "../ledger/context.js";
import { ledgerWrites } from "../ledger/ledgerWrites.js";

/**
 * The meter a keyed `/v1` mutation runs against: the same meter, except that its ledger writes
 * claim the request's `Idempotency-Key` in the statement that writes (one round trip; the claim
 * and the write commit together or not at all). Reads and everything else are the meter's own
 * (through the prototype, internals included). A route that wrote twice would claim twice; the
 * second claim is the same request's, so it passes.
 */
export function claimedMeter(meter: Meter, claim: LedgerClaim): Meter {
  return Object.assign(Object.create(meter) as Meter, ledgerWrites({ ...internalsOf(meter).ledger, claim }));
}
