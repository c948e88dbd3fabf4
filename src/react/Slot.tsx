import { Children, cloneElement, isValidElement, type HTMLAttributes, type ReactElement, type ReactNode } from "react";
import { composeEventHandlers } from "./composeEventHandlers.js";

type AnyProps = Record<string, unknown>;

/**
 * `asChild`: renders its only child with our props merged in. The child's handlers run first
 * (and can `preventDefault`), classes and styles are combined, the child's other props win.
 */
export function Slot({ children, ...slotProps }: HTMLAttributes<HTMLElement> & { children?: ReactNode }) {
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
  return cloneElement(child as ReactElement<AnyProps>, merged);
}
