import { assertId } from "../../core/amounts.js";
import { query } from "../db.js";
import { requestFingerprint } from "../requestFingerprint.js";
import type { MeterInternals } from "../createMeter.js";
import type { LedgerClaim } from "../ledger/context.js";
import type { Incoming } from "./incoming.js";

/** The `Idempotency-Key` header, checked like every other id (1–255 characters, no control characters). */
export function idempotencyKey(incoming: Incoming): string | null {
  const key = incoming.header("idempotency-key");
  if (key === null) return null;
  return assertId(key, "Idempotency-Key");
}

export interface IdempotencyStore {
  /**
   * The claim of `key` for this request (its route and body). Nothing is written here: the
   * ledger call of the request makes the claim in its own statement (`claimedMeter`), which
   * answers `conflict` when the key was used with another route or body, and rolls the claim
   * back when the operation fails (so a corrected retry may reuse the key).
   */
  claim(key: string, route: string, body: unknown): LedgerClaim;
}

/**
 * Idempotency of the `/v1` routes. The ledger already answers a repeated call with its first
 * result (its own key on reserve / events / grants, one resolution per hold on commit and
 * release, an upsert for subscriptions); what the HTTP layer adds is the refusal of a key
 * reused with a *different* request — any user, any route — before anything is written.
 * Claims older than `retention` ms are deleted now and then.
 */
export function createIdempotencyStore(internals: MeterInternals, retention: number): IdempotencyStore {
  const { pool, schema } = internals;
  let lastSweep = Date.now();
  const sweep = () => {
    if (Date.now() - lastSweep < Math.min(retention, 3_600_000)) return;
    lastSweep = Date.now();
    // query() bounds every call in time (the meter's timeouts) and maps errors to MeterErrors.
    query(pool, `DELETE FROM ${schema}.http_idempotency WHERE created_at < now() - $1 * interval '1 millisecond'`, [retention])
      .catch(() => {}); // best effort: an old claim only costs a row
  };
  return {
    claim(key, route, body) {
      sweep();
      return { key, fingerprint: requestFingerprint(route, body) };
    },
  };
}
