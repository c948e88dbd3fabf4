import { createHmac, timingSafeEqual } from "node:crypto";

/** The header meterkit signs outgoing alert webhooks with. */
export const ALERT_SIGNATURE_HEADER = "meterkit-signature";

/**
 * The `Meterkit-Signature` header value for `payload` (the exact body bytes as a string):
 * `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<payload>" keyed with the secret>` — Stripe's
 * scheme, so the same reasoning applies: the timestamp is signed, which bounds replays.
 */
export function signAlert(payload: string, secret: string, timestamp = Math.floor(Date.now() / 1000)): string {
  const v1 = createHmac("sha256", secret).update(`${timestamp}.${payload}`, "utf8").digest("hex");
  return `t=${timestamp},v1=${v1}`;
}

/** Options of `verifyAlertSignature`. */
export interface VerifyAlertSignatureOptions {
  /** Most age of the signature, in seconds (either way). Default 300. */
  tolerance?: number;
  /** "Now" in unix seconds. Default: the clock. */
  now?: number;
}

/**
 * Checks an alert webhook on the host's side: `payload` is the raw body as received (before
 * any JSON parsing), `header` the `Meterkit-Signature` header, `secret` one secret or several
 * during a rotation. True only for a fresh signature by one of the secrets (any `v1` matches).
 */
export function verifyAlertSignature(
  payload: string | Uint8Array,
  header: string | null | undefined,
  secret: string | readonly string[],
  options: VerifyAlertSignatureOptions = {},
): boolean {
  if (typeof header !== "string") return false;
  const parts = header.split(",").map((p) => p.trim().split("="));
  const t = Number(parts.find(([k]) => k === "t")?.[1]);
  const signatures = parts.filter(([k, v]) => k === "v1" && typeof v === "string" && /^[0-9a-f]{64}$/.test(v)).map(([, v]) => Buffer.from(v!, "hex"));
  if (!Number.isSafeInteger(t) || signatures.length === 0) return false;
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - t) > (options.tolerance ?? 300)) return false;
  const body = typeof payload === "string" ? payload : Buffer.from(payload).toString("utf8");
  for (const s of typeof secret === "string" ? [secret] : secret) {
    const expected = createHmac("sha256", s).update(`${t}.${body}`, "utf8").digest();
    if (signatures.some((sig) => sig.length === expected.length && timingSafeEqual(sig, expected))) return true;
  }
  return false;
}
