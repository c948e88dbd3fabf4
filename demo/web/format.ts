/** A whole number with the browser's digit grouping: 12,340. */
export function num(n: number): string {
  return new Intl.NumberFormat().format(n);
}
