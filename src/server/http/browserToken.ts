import { createHmac, timingSafeEqual } from "node:crypto";
import { assertAmount, assertId } from "../../core/amounts.js";
import { MeterError } from "../../core/errors.js";

/** Longest a browser token may live: 30 minutes. */
export const MAX_BROWSER_TOKEN_TTL = 1_800_000;
/** Default lifetime of a browser token: 15 minutes. */
export const DEFAULT_BROWSER_TOKEN_TTL = 900_000;
/** Every browser token starts with this, so the handler can tell it from the host app's own bearer tokens. */
export const BROWSER_TOKEN_PREFIX = "mkb1.";
const MIN_SECRET_LENGTH = 32;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** Options of `meter.browserToken()`. */
export interface BrowserTokenOptions {
  /** Lifetime in milliseconds, at most 1 800 000 (30 minutes). Default 900 000 (15 minutes). */
  ttl?: number;
}

/** Checks the `browserTokenSecret` option once, at createMeter(): the first secret signs, all verify. */
export function browserTokenSecrets(option: string | string[] | undefined): string[] {
  if (option === undefined) return [];
  const list = Array.isArray(option) ? option : [option];
  if (list.length === 0 || list.some((s) => typeof s !== "string" || s.length < MIN_SECRET_LENGTH)) {
    throw new MeterError(
      "invalid_request",
      `createMeter: browserTokenSecret must be a string (or a list for rotation) of at least ${MIN_SECRET_LENGTH} characters; generate one with \`openssl rand -base64 32\`.`,
      { field: "browserTokenSecret" },
    );
  }
  return list;
}

const sign = (secret: string, payload: string) => createHmac("sha256", secret).update(payload).digest("base64url");

/**
 * A short-lived token naming `userId`, for a browser on another origin than the host app's
 * session: it sends it as `Authorization: Bearer <token>` on the browser routes. The token is
 * bound to the meter's schema, so it is no good against another meter sharing the secret.
 */
export function signBrowserToken(secrets: string[], scope: string, userId: string, options: BrowserTokenOptions = {}, now = Date.now()): string {
  const secret = secrets[0];
  if (!secret) {
    throw new MeterError("invalid_request", "meter.browserToken() needs `browserTokenSecret` in createMeter({ … }).", { field: "browserTokenSecret" });
  }
  const sub = assertId(userId, "userId");
  // null is "no options", as everywhere else; anything but an object is a caller's mistake.
  if (options !== null && options !== undefined && (typeof options !== "object" || Array.isArray(options))) {
    throw new MeterError("invalid_request", "options must be an object.", { field: "options" });
  }
  options ??= {};
  const ttl = options.ttl === undefined ? DEFAULT_BROWSER_TOKEN_TTL : assertAmount(options.ttl, "ttl");
  if (ttl > MAX_BROWSER_TOKEN_TTL) {
    throw new MeterError("invalid_request", `ttl must be at most ${MAX_BROWSER_TOKEN_TTL} ms (30 minutes).`, { field: "ttl" });
  }
  const payload = Buffer.from(JSON.stringify({ sub, scope, exp: now + ttl })).toString("base64url");
  return `${BROWSER_TOKEN_PREFIX}${payload}.${sign(secret, BROWSER_TOKEN_PREFIX + payload)}`;
}

/** The user a browser token names, or null when it is malformed, forged, expired or for another meter. */
export function verifyBrowserToken(secrets: string[], scope: string, token: string, now = Date.now()): string | null {
  if (!token.startsWith(BROWSER_TOKEN_PREFIX)) return null;
  const [payload, signature, extra] = token.slice(BROWSER_TOKEN_PREFIX.length).split(".");
  if (!payload || !signature || extra !== undefined) return null;
  // One spelling only: unpadded base64url. Decoding is lenient (padding, the "+/" alphabet,
  // stray characters and unused trailing bits all decode), so the signature is compared as
  // the exact string the server would write, not as the bytes it decodes to.
  if (!BASE64URL.test(payload) || !BASE64URL.test(signature)) return null;
  const given = Buffer.from(signature, "latin1");
  let valid = false;
  // Every secret is tried (no early exit), each comparison in constant time.
  for (const secret of secrets) {
    const expected = Buffer.from(sign(secret, BROWSER_TOKEN_PREFIX + payload), "latin1");
    if (given.length === expected.length && timingSafeEqual(given, expected)) valid = true;
  }
  if (!valid) return null;
  try {
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { sub?: unknown; scope?: unknown; exp?: unknown };
    if (claims.scope !== scope || typeof claims.exp !== "number" || claims.exp <= now) return null;
    return assertId(claims.sub, "sub");
  } catch {
    return null;
  }
}
