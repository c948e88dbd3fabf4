import { createHash, timingSafeEqual } from "node:crypto";
import { MeterError } from "../../core/errors.js";
import type { Incoming } from "./incoming.js";

const MIN_KEY_LENGTH = 24;

export type SecretKeyCheck = (presented: string | null) => boolean;

/**
 * A check of `Authorization: Bearer <key>` against every configured key. Both sides are hashed
 * first so the comparison is constant-time whatever the lengths, and every key is compared (no
 * early exit) so the time says nothing about which key, if any, was close.
 */
export function secretKeyCheck(keys: string | string[] | undefined): SecretKeyCheck {
  const list = keys === undefined ? [] : Array.isArray(keys) ? keys : [keys];
  for (const k of list) {
    if (typeof k !== "string" || k.length < MIN_KEY_LENGTH) {
      throw new MeterError(
        "invalid_request",
        `createMeterHandler: every secret key must be a string of at least ${MIN_KEY_LENGTH} characters; generate one with \`openssl rand -base64 32\`.`,
        { field: "secretKeys" },
      );
    }
  }
  const digest = (s: string) => createHash("sha256").update(s).digest();
  const hashes = list.map(digest);
  return (presented) => {
    if (presented === null || hashes.length === 0) return false;
    const h = digest(presented);
    let ok = false;
    for (const k of hashes) if (timingSafeEqual(h, k)) ok = true;
    return ok;
  };
}

/** The token of an `Authorization: Bearer …` header, or null. */
export function bearer(incoming: Incoming): string | null {
  const header = incoming.header("authorization");
  if (!header) return null;
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null;
}
