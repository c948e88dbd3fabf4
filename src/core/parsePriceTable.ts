import { assertAmount, parseDecimal } from "./amounts.js";
import { MeterError } from "./errors.js";
import type { ModelPrice, PriceTable, PriceTier } from "./types.js";

const PRICE_KEYS = ["input", "cachedInput", "cacheWrite", "cacheWrite1h", "output"] as const;
const ENTRY_KEYS = new Set<string>([...PRICE_KEYS, "tiers", "effective", "source", "encoding"]);
const TIER_KEYS = new Set<string>(["above", ...PRICE_KEYS]);
const ENCODINGS = new Set<string>(["o200k_base", "cl100k_base", "estimate"]);
const DATE = /^\d{4}-\d{2}-\d{2}$/;

/**
 * Validates a price table read from JSON (a file or a URL the host refreshes), so prices can
 * change without a release: `{ "<model id>": { "input": "2.50", "output": "10.00", … } }` with
 * the fields of {@link ModelPrice}. Prices must be decimal strings (never JSON numbers, which
 * lose exactness); unknown fields, missing prices and malformed tiers are `invalid_request`
 * errors naming the field. Accepts the JSON text or its parsed value; returns a frozen table.
 *
 * @example
 * const prices = { ...DEFAULT_PRICES, ...parsePriceTable(await readFile("prices.json", "utf8")) };
 */
export function parsePriceTable(json: unknown): PriceTable {
  let value = json;
  if (typeof json === "string") {
    try {
      value = JSON.parse(json);
    } catch (err) {
      throw new MeterError("invalid_request", `The price table is not valid JSON: ${(err as Error).message}`, { field: "prices" });
    }
  }
  const table = record(value, "prices");
  const out: Record<string, ModelPrice> = {};
  for (const [model, entry] of Object.entries(table)) {
    if (model.length === 0) throw invalid("prices", "has an empty model id.");
    out[model] = parseEntry(entry, `prices[${JSON.stringify(model)}]`);
  }
  return Object.freeze(out);
}

function parseEntry(value: unknown, path: string): ModelPrice {
  const e = record(value, path);
  onlyKeys(e, ENTRY_KEYS, path);
  const price = rates(e, path) as ModelPrice;
  if (e.tiers !== undefined) {
    if (!Array.isArray(e.tiers)) throw invalid(`${path}.tiers`, "must be an array of tiers.");
    const seen = new Set<number>();
    price.tiers = Object.freeze(
      e.tiers.map((tier: unknown, i: number): PriceTier => {
        const at = `${path}.tiers[${i}]`;
        const t = record(tier, at);
        onlyKeys(t, TIER_KEYS, at);
        const above = assertAmount(t.above, `${at}.above`);
        if (seen.has(above)) throw invalid(`${at}.above`, `repeats the threshold ${above}.`);
        seen.add(above);
        return Object.freeze({ above, ...rates(t, at) }) as PriceTier;
      }),
    );
  }
  if (e.effective !== undefined && (typeof e.effective !== "string" || !DATE.test(e.effective))) {
    throw invalid(`${path}.effective`, "must be an ISO date like 2026-11-27.");
  }
  if (e.effective !== undefined) price.effective = e.effective as string;
  if (e.source !== undefined && (typeof e.source !== "string" || e.source.length === 0)) throw invalid(`${path}.source`, "must be a non-empty string.");
  if (e.source !== undefined) price.source = e.source as string;
  if (e.encoding !== undefined && (typeof e.encoding !== "string" || !ENCODINGS.has(e.encoding))) {
    throw invalid(`${path}.encoding`, `must be one of ${[...ENCODINGS].join(", ")}.`);
  }
  if (e.encoding !== undefined) price.encoding = e.encoding as ModelPrice["encoding"];
  return Object.freeze(price);
}

/** The five prices of an entry or a tier: `input` and `output` required, decimal strings. */
function rates(o: Record<string, unknown>, path: string): Partial<Record<(typeof PRICE_KEYS)[number], string>> {
  const out: Partial<Record<(typeof PRICE_KEYS)[number], string>> = {};
  for (const key of PRICE_KEYS) {
    const v = o[key];
    if (v === undefined) {
      if (key === "input" || key === "output") throw invalid(`${path}.${key}`, "is required.");
      continue;
    }
    parseDecimal(v, `${path}.${key}`);
    out[key] = v as string;
  }
  return out;
}

function record(value: unknown, path: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw invalid(path, "must be an object.");
  return value as Record<string, unknown>;
}

function onlyKeys(o: Record<string, unknown>, allowed: Set<string>, path: string): void {
  for (const key of Object.keys(o)) if (!allowed.has(key)) throw invalid(`${path}.${key}`, "is not a known field.");
}

function invalid(field: string, message: string): MeterError {
  return new MeterError("invalid_request", `${field} ${message}`.trim(), { field });
}
