import { assertAmount, assertId, parseDecimal } from "../core/amounts.js";
import { MeterError } from "../core/errors.js";
import { fineCostOfTokens, priceOf } from "../core/pricing.js";
import { readableLabel } from "../core/readableLabel.js";
import type { LimitGroup, MeterDefinition, PlanDefinition, PriceTable, Unit } from "../core/types.js";

/** A limit group with every default filled in. */
export type ResolvedGroup = Required<Omit<LimitGroup, "currency">> & { currency: string | null };

export interface ResolvedConfig {
  plans: Record<string, { label: string; limits: Record<string, ResolvedGroup>; postpaid?: boolean }>;
  meters: Record<string, MeterDefinition>;
  /** Counter key → its unit (the same in every plan). */
  units: Map<string, Unit>;
  /** Counter key → its kind (the same in every plan). */
  kinds: Map<string, "quota" | "concurrency">;
  prices: PriceTable;
  defaultPlan: string | null;
}

const PERIODS = ["month", "week", "day", "hour", "minute", "none"];
const ANCHORS = ["calendar", "subscription_start"];

/** Checks the plans, meters and prices once, at createMeter(), with messages that say what to fix. */
export function resolveConfig(
  plans: Record<string, PlanDefinition> | undefined,
  meters: Record<string, MeterDefinition> | undefined,
  prices: PriceTable,
  defaultPlan: string | undefined,
): ResolvedConfig {
  if (!plans || typeof plans !== "object" || Object.keys(plans).length === 0) {
    throw new MeterError("invalid_request", "createMeter: `plans` must define at least one plan.", { field: "plans" });
  }
  const units = new Map<string, Unit>();
  const kinds = new Map<string, "quota" | "concurrency">();
  const out: ResolvedConfig["plans"] = {};
  for (const [planId, plan] of Object.entries(plans)) {
    assertId(planId, "plan id");
    const limits: Record<string, ResolvedGroup> = {};
    for (const [key, g] of Object.entries(plan?.limits ?? {})) {
      assertId(key, `plans.${planId}.limits key`);
      const where = `plans.${planId}.limits.${key}`;
      const kind = g.kind ?? "quota";
      if (kind !== "quota" && kind !== "concurrency") {
        throw new MeterError("invalid_request", `${where}.kind must be "quota" or "concurrency".`, { field: where });
      }
      const concurrent = kind === "concurrency";
      if (concurrent && g.period !== undefined && g.period !== "none") {
        throw new MeterError("invalid_request", `${where}: a concurrency group counts holds in flight and has no period (omit it or use "none").`, { field: where });
      }
      const unit = g.unit ?? (concurrent ? "calls" : "tokens");
      if (concurrent && unit === "cents") {
        throw new MeterError("invalid_request", `${where}: a concurrency group counts calls, not cents.`, { field: where });
      }
      const knownKind = kinds.get(key);
      if (knownKind !== undefined && knownKind !== kind) {
        throw new MeterError("invalid_request", `Counter "${key}" is a ${knownKind} group in one plan and a ${kind} group in another; a counter has one kind.`, { field: where });
      }
      kinds.set(key, kind);
      const period = g.period ?? (concurrent ? "none" : "month");
      const anchor = g.anchor ?? "calendar";
      if (!PERIODS.includes(period)) throw new MeterError("invalid_request", `${where}.period must be one of ${PERIODS.join(", ")}.`, { field: where });
      if (!ANCHORS.includes(anchor)) throw new MeterError("invalid_request", `${where}.anchor must be one of ${ANCHORS.join(", ")}.`, { field: where });
      if (g.overage !== undefined && g.overage !== "record" && g.overage !== "reject") {
        throw new MeterError("invalid_request", `${where}.overage must be "record" or "reject".`, { field: where });
      }
      const known = units.get(key);
      if (known !== undefined && known !== unit) {
        throw new MeterError("invalid_request", `Counter "${key}" is in "${known}" in one plan and "${unit}" in another; a counter has one unit.`, { field: where });
      }
      units.set(key, unit);
      limits[key] = {
        label: g.label ?? readableLabel(key),
        unit,
        // null: an unlimited counter (usage recorded, nothing refused).
        quota: g.quota === null ? null : assertAmount(g.quota, `${where}.quota`, { allowZero: true }),
        period,
        anchor,
        overage: g.overage ?? "record",
        kind,
        currency: unit === "cents" ? (g.currency ?? "usd").toLowerCase() : null,
      };
    }
    out[planId] = { label: plan?.label ?? planId, limits, ...(plan?.postpaid === true ? { postpaid: true } : {}) };
  }
  const resolvedMeters: Record<string, MeterDefinition> = {};
  for (const [key, m] of Object.entries(meters ?? {})) {
    assertId(key, "meter key");
    if (key.endsWith(".refund")) {
      throw new MeterError("invalid_request", `Meter "${key}": refund keys need no definition; define "${key.slice(0, -7)}".`, { field: "meters" });
    }
    if (!m || !units.has(m.counter)) {
      throw new MeterError("invalid_request", `Meter "${key}" points at counter "${m?.counter}", which no plan defines.`, { field: "meters" });
    }
    if (m.price !== undefined) {
      if (!["input", "cachedInput", "output"].includes(m.price)) {
        throw new MeterError("invalid_request", `Meter "${key}".price must be "input", "cachedInput" or "output".`, { field: "meters" });
      }
      if (units.get(m.counter) !== "cents") {
        throw new MeterError("invalid_request", `Meter "${key}" has a price but counter "${m.counter}" is not in cents.`, { field: "meters" });
      }
    }
    if (m.counts !== undefined && m.counts !== "input" && m.counts !== "output") {
      throw new MeterError("invalid_request", `Meter "${key}".counts must be "input" or "output".`, { field: "meters" });
    }
    resolvedMeters[key] = { ...m };
  }
  // Every counter can be charged directly under its own key unless a meter says otherwise.
  for (const key of units.keys()) if (!resolvedMeters[key]) resolvedMeters[key] = { counter: key };
  for (const [model, p] of Object.entries(prices)) {
    parseDecimal(p.input, `prices.${model}.input`);
    parseDecimal(p.output, `prices.${model}.output`);
    if (p.cachedInput !== undefined) parseDecimal(p.cachedInput, `prices.${model}.cachedInput`);
  }
  if (defaultPlan !== undefined && !out[defaultPlan]) {
    throw new MeterError("invalid_request", `defaultPlan "${defaultPlan}" is not one of the plans.`, { field: "defaultPlan" });
  }
  return { plans: out, meters: resolvedMeters, units, kinds, prices, defaultPlan: defaultPlan ?? null };
}

export interface MeterTarget {
  meterKey: string;
  counter: string;
  unit: Unit;
  refund: boolean;
  definition: MeterDefinition;
}

/** Resolves an event key (`llm.tokens`, `llm.tokens.refund`) to its counter, or not_found. */
export function resolveMeter(config: ResolvedConfig, meterKey: unknown): MeterTarget {
  const key = assertId(meterKey, "meterKey");
  const refund = key.endsWith(".refund");
  const base = refund ? key.slice(0, -".refund".length) : key;
  // Own keys only: "constructor" or "__proto__" must be an unknown meter, not Object's.
  const definition = Object.hasOwn(config.meters, base) ? config.meters[base] : undefined;
  if (!definition) throw new MeterError("not_found", `Unknown meter "${base}".`, { meterKey: key });
  return { meterKey: key, counter: definition.counter, unit: config.units.get(definition.counter) ?? "tokens", refund, definition };
}

/** Refuses `what` (track, grant, adjust) on a concurrency group: it counts holds, not usage. */
export function refuseConcurrency(config: ResolvedConfig, counter: string, what: string): void {
  if (config.kinds.get(counter) === "concurrency") {
    throw new MeterError("invalid_request", `Counter "${counter}" is a concurrency group: it counts reservations in flight and takes no ${what}.`, { field: "counter", counter });
  }
}

export function assertCounter(config: ResolvedConfig, counterKey: unknown): string {
  const key = assertId(counterKey, "counterKey");
  if (!config.units.has(key)) throw new MeterError("not_found", `Unknown counter "${key}".`, { counter: key });
  return key;
}

/** Fine units (10^-16 of a cent) per token for each price of a model, as decimal strings for SQL. */
export function finePerToken(prices: PriceTable, model: string): { input: string; cachedInput: string; output: string } {
  const p = priceOf(prices, model);
  const fine = (price: string) => fineCostOfTokens(1, price).toString();
  return { input: fine(p.input), cachedInput: fine(p.cachedInput ?? p.input), output: fine(p.output) };
}
