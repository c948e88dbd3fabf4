import { MeterError } from "../../core/errors.js";
import type { Reply } from "./respond.js";

/** CORS for the browser routes (never the `/v1` server routes or the webhook). Off by default. */
export interface CorsOptions {
  /**
   * Origins allowed to call the browser routes: exact origins (`"https://app.example.com"`),
   * `"*"` (any origin, only without `credentials`), or a function deciding per origin.
   */
  origin: string | string[] | ((origin: string) => boolean);
  /**
   * Let the browser send cookies cross-origin (`Access-Control-Allow-Credentials: true`).
   * Not needed with browser tokens, which travel in `Authorization`. Default false.
   */
  credentials?: boolean;
  /** How long browsers may cache a preflight, in seconds. Default 600. */
  maxAge?: number;
}

export interface Cors {
  /** Headers to add to an answer to `origin`, or `{}` when it is not allowed. */
  headers(origin: string | null): Record<string, string>;
  /** The answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`). */
  preflight(origin: string | null, methods: string[]): Reply;
}

const NONE: Cors = {
  headers: () => ({}),
  preflight: (_origin, methods) => ({ status: 204, headers: { allow: [...methods, "OPTIONS"].join(", ") }, body: null }),
};

export function createCors(options: CorsOptions | undefined): Cors {
  if (!options) return NONE;
  const { origin, credentials = false, maxAge = 600 } = options;
  const list = typeof origin === "string" ? [origin] : Array.isArray(origin) ? origin : null;
  if (credentials && list?.includes("*")) {
    throw new MeterError("invalid_request", 'cors: `origin: "*"` cannot be combined with `credentials: true`; list the origins instead.', { field: "cors" });
  }
  const allowed = (o: string) => (typeof origin === "function" ? origin(o) : list!.includes("*") || list!.includes(o));
  const headers = (o: string | null): Record<string, string> => {
    if (!o || !allowed(o)) return {};
    const h: Record<string, string> = {
      "access-control-allow-origin": list?.includes("*") && !credentials ? "*" : o,
      vary: "Origin",
    };
    if (credentials) h["access-control-allow-credentials"] = "true";
    return h;
  };
  return {
    headers,
    preflight(o, methods) {
      const h = headers(o);
      if (h["access-control-allow-origin"]) {
        h["access-control-allow-methods"] = methods.join(", ");
        h["access-control-allow-headers"] = "Authorization, Content-Type";
        h["access-control-max-age"] = String(maxAge);
      }
      return { status: 204, headers: { ...h, allow: [...methods, "OPTIONS"].join(", ") }, body: null };
    },
  };
}
