/** The kit's class for a part plus the consumer's, if any. */
export function cx(base: string, extra: string | undefined): string {
  return extra ? `${base} ${extra}` : base;
}
