import { Children, cloneElement, forwardRef, isValidElement, version, type HTMLAttributes, type ReactElement, type ReactNode, type Ref } from "react";
import { composeEventHandlers } from "./composeEventHandlers.js";
import { setRefs } from "./composeRefs.js";

type AnyProps = Record<string, unknown>;

/**
 * `asChild`: renders its only child with our props merged in. The child's handlers run first
 * (and can `preventDefault`), classes and styles are combined, refs are merged, the child's
 * other props win. The kit passes no class of its own through it: the child keeps its design.
 */
export const Slot = forwardRef<HTMLElement, HTMLAttributes<HTMLElement> & { children?: ReactNode }>(function Slot({ children, ...slotProps }, ref) {
  const child = Children.only(children);
  if (!isValidElement<AnyProps>(child)) return null;
  const merged: AnyProps = { ...slotProps, ...child.props };
  for (const [name, ours] of Object.entries(slotProps as AnyProps)) {
    const theirs = child.props[name];
    if (/^on[A-Z]/.test(name) && typeof ours === "function") {
      merged[name] = typeof theirs === "function" ? composeEventHandlers(theirs as (e: Event) => void, ours as (e: Event) => void) : ours;
    }
  }
  merged.className = [slotProps.className, child.props.className].filter(Boolean).join(" ") || undefined;
  merged.style = { ...slotProps.style, ...(child.props.style as object | undefined) };
  // React 19 passes a child's ref as a prop; React 18 keeps it on the element.
  const childRef = (Number(version.split(".")[0]) >= 19 ? child.props.ref : (child as unknown as { ref?: Ref<HTMLElement> }).ref) as Ref<HTMLElement> | undefined;
  merged.ref = ref || childRef ? (node: HTMLElement | null) => setRefs(node, ref, childRef) : undefined;
  return cloneElement(child as ReactElement<AnyProps>, merged);
});
