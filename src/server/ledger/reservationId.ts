import { randomFillSync, randomUUID } from "node:crypto";

/** The longest id `assertId` accepts. */
const MAX_ID = 255;
/**
 * `rsv_` + 12 hex digits of time + 16 random hex digits + `_` + at least one character, any
 * (`s`: as SQL's `reservation_user()` reads it; a user id may begin with U+2028).
 */
const ROUTED = /^rsv_[0-9a-f]{28}_./s;

/**
 * A new reservation id for `userId`. Opaque to users; its format is the ledger's business:
 * `rsv_` + the time in ms (12 hex digits) + 16 random hex digits + `_` + the user id, so that
 * commit and release find the hold by (user, id) — every statement then names the user, which
 * is what lets the ledger's tables be partitioned or distributed by user — and new ids sort
 * after older ones (inserts stay on the right-most pages of the id index). A user id too long
 * for the 255 characters of an id gets the unrouted form of earlier releases (`rsv_` + 32 hex
 * digits), which the ledger finds by id alone. `reservation_user()` in migration 0030 is the
 * SQL side of this format.
 */
export function newReservationId(userId: string): string {
  const routed = `rsv_${Date.now().toString(16).padStart(12, "0")}${random16Hex()}_${userId}`;
  return routed.length <= MAX_ID ? routed : "rsv_" + randomUUID().replace(/-/g, "");
}

/**
 * Random bytes drawn from the CSPRNG 4 KiB at a time, the way `crypto.randomUUID()` buffers its
 * own: one `randomBytes(8)` per reservation was a visible share of a reserve's CPU time in Node
 * (tools/batchProfile.ts). Every id still gets bytes no other id got.
 */
const RANDOM = Buffer.alloc(4096);
let randomAt = RANDOM.length;

/** 16 random hex digits (8 bytes). */
function random16Hex(): string {
  if (randomAt + 8 > RANDOM.length) {
    randomFillSync(RANDOM);
    randomAt = 0;
  }
  randomAt += 8;
  return RANDOM.toString("hex", randomAt - 8, randomAt);
}

/** The user a reservation id routes to, or null for an id without one. */
export function reservationUser(reservationId: string): string | null {
  return ROUTED.test(reservationId) ? reservationId.slice(33) : null;
}
