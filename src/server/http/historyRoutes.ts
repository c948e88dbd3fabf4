import { MeterError } from "../../core/errors.js";
import { json } from "./respond.js";
import type { Route } from "./routes.js";

/** Days `GET /usage/history` serves by default, and at most. */
const HISTORY_DAYS = { default: 30, max: 366 };
/** Entries per page of `GET /entries` by default, and at most. */
const ENTRIES_LIMIT = { default: 20, max: 100 };

/**
 * The query string of a browser read, checked: only `allowed` names, each once, each a whole
 * number from 1 to `max` (or digits, for a cursor). Anything else is 400 `invalid_request`.
 */
function readQuery(url: URL, allowed: Record<string, number>): Record<string, number | undefined> {
  const params = url.searchParams;
  const out: Record<string, number | undefined> = {};
  for (const name of new Set(params.keys())) {
    if (!(name in allowed)) {
      throw new MeterError("invalid_request", `Unknown query parameter "${name}" (known: ${Object.keys(allowed).join(", ")}).`, { field: name });
    }
    const values = params.getAll(name);
    const value = values[0]!;
    // Digits only: no sign, no exponent, no fraction, no whitespace; and not so long it loses precision.
    if (values.length > 1 || !/^[0-9]{1,15}$/.test(value) || Number(value) < 1 || Number(value) > allowed[name]!) {
      throw new MeterError("invalid_request", `Query parameter "${name}" must be one whole number from 1 to ${allowed[name]}.`, { field: name });
    }
    out[name] = Number(value);
  }
  return out;
}

/**
 * The signed-in user's history, for `UsageHistory`. Like every browser route they act for
 * `c.userId` only (from `identify` or a browser token); there is no user in the query to trust.
 */
export const HISTORY_ROUTES: Route[] = [
  {
    // { days: [{ date: "YYYY-MM-DD", counters: { [key]: used } }] }, oldest first, every day listed.
    path: ["usage", "history"],
    method: "GET",
    audience: "browser",
    run: async (c) => {
      const q = readQuery(c.incoming.url, { days: HISTORY_DAYS.max });
      const days = q.days ?? HISTORY_DAYS.default;
      const usage = await c.meter.usage(c.userId);
      // One series per counter: units differ between counters, so they are never summed.
      const series = await Promise.all(usage.counters.map((counter) => c.meter.usageByDay(c.userId, { days, counter: counter.key })));
      const out = (series[0] ?? (await c.meter.usageByDay(c.userId, { days }))).map((d, i) => ({
        date: d.day,
        counters: Object.fromEntries(usage.counters.map((counter, k) => [counter.key, series[k]![i]?.used ?? 0])),
      }));
      return json(200, { days: out }, { ...c.headers, "cache-control": "no-store" });
    },
  },
  {
    // { entries: LedgerEntry[], nextCursor: string | null }, newest first.
    path: ["entries"],
    method: "GET",
    audience: "browser",
    run: async (c) => {
      const q = readQuery(c.incoming.url, { before: Number.MAX_SAFE_INTEGER, limit: ENTRIES_LIMIT.max });
      const limit = q.limit ?? ENTRIES_LIMIT.default;
      // One more than asked says whether an older page exists.
      const rows = await c.meter.entries(c.userId, { limit: limit + 1, before: q.before === undefined ? undefined : String(q.before) });
      const entries = rows.slice(0, limit);
      const nextCursor = rows.length > limit ? entries[entries.length - 1]!.id : null;
      return json(200, { entries, nextCursor }, { ...c.headers, "cache-control": "no-store" });
    },
  },
];
