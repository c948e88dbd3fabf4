import { createHash } from "node:crypto";
import { assertId } from "../../core/amounts.js";
import { MeterError } from "../../core/errors.js";
import { query } from "../db.js";
import type { MeterInternals } from "../createMeter.js";

/** The `Idempotency-Key` header, checked like every other id (1–255 characters, no control characters). */
export function idempotencyKey(request: Request): string | null {
  const key = request.headers.get("idempotency-key");
  if (key === null) return null;
  return assertId(key, "Idempotency-Key");
}

/** JSON with object keys sorted, so `{"a":1,"b":2}` and `{"b":2,"a":1}` are the same body. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

export interface IdempotencyStore {
  /**
   * Claims `key` for this request. Resolves with a `release` to call when the operation fails
   * (so a corrected retry may reuse the key), or throws `conflict` when the key was used with
   * another route or body.
   */
  claim(key: string, route: string, body: unknown): Promise<{ release(): Promise<void> }>;
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
    async claim(key, route, body) {
      const fingerprint = createHash("sha256").update(route).update("\n").update(canonical(body)).digest("hex");
      const { rows } = await query<{ r: string }>(pool, `SELECT ${schema}.http_claim($1, $2) AS r`, [key, fingerprint]);
      const outcome = rows[0]!.r;
      if (outcome === "conflict") {
        throw new MeterError("conflict", `Idempotency-Key ${JSON.stringify(key)} was already used with a different request.`, {
          idempotencyKey: key,
        });
      }
      sweep();
      const claimed = outcome === "claimed";
      return {
        async release() {
          if (!claimed) return;
          await query(pool, `DELETE FROM ${schema}.http_idempotency WHERE key = $1 AND fingerprint = $2`, [key, fingerprint])
            .catch(() => {}); // if it stays, the key stays bound to this (failed) request: still safe
        },
      };
    },
  };
}
