import { formatAmount } from "../../src/react/index.js";

/** A whole number with the browser's digit grouping: 12,340. */
export function num(n: number): string {
  return new Intl.NumberFormat().format(n);
}

/** An amount of tokens as the kit writes it: "12,340 tokens", "1 token". */
export function tokens(n: number): string {
  return formatAmount(n, "tokens", { compact: false });
}

/** A time of day in the browser's zone: "14:05:09". */
export function time(iso: string): string {
  return new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" }).format(new Date(iso));
}
