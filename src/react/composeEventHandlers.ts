/**
 * Runs the consumer's handler first; ours only if it did not call `preventDefault()`
 * (Radix's rule, so a consumer can cancel the kit's behaviour).
 */
export function composeEventHandlers<E extends { defaultPrevented: boolean }>(
  theirs: ((event: E) => void) | undefined,
  ours: (event: E) => void,
): (event: E) => void {
  return (event) => {
    theirs?.(event);
    if (!event.defaultPrevented) ours(event);
  };
}
