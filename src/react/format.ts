import type { Unit } from "../core/types.js";
import { plural, type PluralText } from "./messages.js";

export interface FormatAmountOptions {
  /** BCP 47 locale. Default: the runtime's. */
  locale?: string | undefined;
  /** ISO 4217 currency of a `cents` amount. Default `"usd"`. */
  currency?: string | undefined;
  /**
   * Compact notation ("217K"): `true`, `false`, or the value (in whole currency units for money)
   * from which on it applies. Default `100000`.
   */
  compact?: boolean | number | undefined;
  /** Unit names by plural category (`messages.units`). Default: English `token(s)`, `request(s)`. */
  units?: Record<string, PluralText> | undefined;
}

/** English unit names; a custom unit shows as the plan spells it. */
export const DEFAULT_UNITS: Record<string, PluralText> = {
  tokens: { one: "token", other: "tokens" },
  requests: { one: "request", other: "requests" },
};

/** The name of `unit` for `count`, by the locale's plural rules. */
export function unitName(unit: Unit, count: number, locale: string | undefined, units = DEFAULT_UNITS): string {
  return plural(units[unit] ?? DEFAULT_UNITS[unit] ?? { other: unit }, count, locale);
}

/**
 * Formats an amount in a counter's base unit: `cents` as money in the currency's minor unit
 * ("$12.34", "¥1,234"), tokens and custom units as a number and the unit ("12,340 tokens").
 */
export function formatAmount(amount: number, unit: Unit, { locale, currency = "usd", compact = 100_000, units }: FormatAmountOptions = {}): string {
  const money = unit === "cents";
  // Intl reads currency codes in any case ("usd" is USD), as Stripe and the wire spell them.
  const base: Intl.NumberFormatOptions = money ? { style: "currency", currency } : {};
  // The currency's own minor unit: 2 digits for USD, 0 for JPY, 3 for KWD.
  const value = money ? amount / 10 ** (new Intl.NumberFormat(locale, base).resolvedOptions().maximumFractionDigits!) : amount;
  const isCompact = typeof compact === "number" ? Math.abs(value) >= compact : compact;
  const text = new Intl.NumberFormat(locale, isCompact ? { ...base, notation: "compact", maximumFractionDigits: 1 } : base).format(value);
  return money ? text : `${text} ${unitName(unit, amount, locale, units)}`;
}

/** Formats a renewal date in UTC, the zone periods are computed in (and the same on server and browser). */
export function formatDate(date: Date, locale?: string): string {
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeZone: "UTC" }).format(date);
}
