import { useCallback, type Ref } from "react";

/** Sets every ref (callback or object) to the same node. */
export function setRefs<T>(node: T | null, ...refs: Array<Ref<T> | undefined>): void {
  for (const ref of refs) {
    if (typeof ref === "function") ref(node);
    else if (ref) ref.current = node;
  }
}

/** One callback ref that feeds all of `refs`: the consumer's and the component's own. */
export function useComposedRefs<T>(...refs: Array<Ref<T> | undefined>): (node: T | null) => void {
  // eslint-disable-next-line react-hooks/exhaustive-deps -- the refs themselves are the dependencies
  return useCallback((node: T | null) => setRefs(node, ...refs), refs);
}
