import { assertId } from "../../core/amounts.js";
import { MeterError } from "../../core/errors.js";
import type { MeterInternals } from "../createMeter.js";
import { run } from "../outbox/outbox.js";
import { requestFingerprint } from "../requestFingerprint.js";

/** A request whose first run died mid-way (no answer stored) is taken over after this long. */
const TAKE_OVER_MS = 60_000;
/** Keys are kept this long, like Stripe's (24 h). */
const RETENTION_MS = 86_400_000;

/**
 * Runs a settings change of `userId` once per idempotency key: the first call runs `apply` and
 * stores its answer; a later call with the same key and the same operation and body answers
 * that stored value without running it again; the same key with another body is `conflict`
 * (409), and so is a call while the first is still running. Without a key, `apply` just runs.
 * A failed `apply` frees the key, so a corrected retry may reuse it.
 */
export async function onceByKey<T>(
  internals: Pick<MeterInternals, "pool" | "schema">,
  userId: string,
  key: unknown,
  operation: string,
  body: unknown,
  apply: () => Promise<T>,
): Promise<T> {
  if (key === undefined || key === null) return apply();
  const k = assertId(key, "idempotencyKey");
  const s = internals.schema;
  const fingerprint = requestFingerprint(operation, body);
  // Claim the key, or take over a claim whose request died before it stored an answer.
  const [claimed] = await run<{ key: string }>(
    internals.pool,
    `INSERT INTO ${s}.auto_top_up_keys AS k (user_id, key, fingerprint) VALUES ($1, $2, $3)
     ON CONFLICT (user_id, key) DO UPDATE SET created_at = now()
       WHERE k.result IS NULL AND k.fingerprint = excluded.fingerprint AND k.created_at < now() - $4 * interval '1 millisecond'
     RETURNING key`,
    [userId, k, fingerprint, TAKE_OVER_MS],
  );
  if (!claimed) {
    const [prior] = await run<{ fingerprint: string; result: { value: T } | null }>(
      internals.pool,
      `SELECT fingerprint, result FROM ${s}.auto_top_up_keys WHERE user_id = $1 AND key = $2`,
      [userId, k],
    );
    if (prior && prior.fingerprint !== fingerprint) {
      throw new MeterError("conflict", `Idempotency-Key ${JSON.stringify(k)} was already used with a different request.`, { idempotencyKey: k });
    }
    if (prior?.result) return prior.result.value;
    if (prior) throw new MeterError("conflict", `A request with Idempotency-Key ${JSON.stringify(k)} is still running; retry shortly.`, { idempotencyKey: k });
    return onceByKey(internals, userId, k, operation, body, apply); // freed meanwhile: claim again
  }
  let value: T;
  try {
    value = await apply();
  } catch (err) {
    await run(internals.pool, `DELETE FROM ${s}.auto_top_up_keys WHERE user_id = $1 AND key = $2 AND result IS NULL`, [userId, k]).catch(() => {});
    throw err;
  }
  await run(internals.pool, `UPDATE ${s}.auto_top_up_keys SET result = $3::jsonb WHERE user_id = $1 AND key = $2`, [
    userId,
    k,
    JSON.stringify({ value }),
  ]);
  // Now and then, forget old keys (best effort: an old key only costs a row).
  if (Math.random() < 0.01) {
    void run(internals.pool, `DELETE FROM ${s}.auto_top_up_keys WHERE created_at < now() - $1 * interval '1 millisecond'`, [RETENTION_MS]).catch(() => {});
  }
  return value;
}
