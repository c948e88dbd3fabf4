import { forwardRef, useEffect, useLayoutEffect, useRef, useState, type HTMLAttributes, type KeyboardEvent, type RefObject } from "react";
import { useComposedRefs } from "./composeRefs.js";

const FOCUSABLE = 'a[href],button:not([disabled]),input:not([disabled]),select:not([disabled]),textarea:not([disabled]),[tabindex]:not([tabindex="-1"])';

export interface ModalProps extends HTMLAttributes<HTMLDialogElement> {
  /** Open, or closing (still mounted while its exit animation runs). */
  open: boolean;
  onClose: () => void;
  /** What gets focus when it opens. Default: the first focusable element. */
  initialFocus?: RefObject<HTMLElement | null>;
}

/**
 * Mounted while `open`, and after `open` turns false until the element's CSS exit animation
 * (an `animation` on `[data-state="closed"]`) ends; at once when it has none.
 */
export function usePresence(open: boolean, ref: RefObject<HTMLElement | null>): boolean {
  const [present, setPresent] = useState(open);
  if (open && !present) setPresent(true);
  useEffect(() => {
    const el = ref.current;
    if (open || !present) return;
    const style = el ? getComputedStyle(el) : null;
    const animated = !!style && !!style.animationName && style.animationName !== "none" && parseFloat(style.animationDuration) > 0;
    if (!animated) return setPresent(false);
    // Only the end of this exit animation counts: not the open animation it cancelled, not the
    // ::backdrop's (whose events also target the dialog).
    const name = style.animationName;
    const done = (e: Event) => {
      const a = e as AnimationEvent;
      if (e.target === el && !a.pseudoElement && a.animationName === name) setPresent(false);
    };
    el!.addEventListener("animationend", done);
    el!.addEventListener("animationcancel", done);
    return () => {
      el!.removeEventListener("animationend", done);
      el!.removeEventListener("animationcancel", done);
    };
  }, [open, present, ref]);
  return open || present;
}

/**
 * A modal `<dialog>`: `showModal()` makes the rest of the page inert and puts it in the top
 * layer. Where `showModal` is missing (jsdom, old browsers) it falls back to an open dialog with
 * the same keyboard rules. Tab is trapped either way, Escape and a backdrop click close it, and
 * focus goes back where it was when it unmounts (after the exit animation). `data-state` is `open` or `closed` (closing).
 */
export const Modal = forwardRef<HTMLDialogElement, ModalProps>(function Modal({ open, onClose, initialFocus, onKeyDown, ...rest }, forwarded) {
  const ref = useRef<HTMLDialogElement>(null);
  const setRef = useComposedRefs(ref, forwarded);
  // Mounted = shown as a modal; unmounted = closed, focus back where it was. A layout effect, so
  // both happen before the element leaves the document (a detached dialog cannot restore focus).
  useLayoutEffect(() => {
    const dialog = ref.current!;
    const previous = document.activeElement as HTMLElement | null;
    if (typeof dialog.showModal === "function") dialog.showModal();
    else dialog.setAttribute("open", "");
    return () => {
      if (typeof dialog.close === "function") dialog.close();
      previous?.focus?.();
    };
  }, []);
  // Each opening (also a reopening while it was closing) puts focus on the initial element.
  useEffect(() => {
    if (open) (initialFocus?.current ?? ref.current!.querySelector<HTMLElement>(FOCUSABLE) ?? ref.current!).focus();
  }, [open, initialFocus]);

  const keys = (e: KeyboardEvent<HTMLDialogElement>) => {
    onKeyDown?.(e);
    if (e.defaultPrevented) return;
    if (e.key === "Escape") {
      e.preventDefault();
      onClose();
    } else if (e.key === "Tab") {
      const items = [...e.currentTarget.querySelectorAll<HTMLElement>(FOCUSABLE)];
      const first = items[0];
      const last = items[items.length - 1];
      const active = document.activeElement;
      if (!first || !last) e.preventDefault();
      else if (e.shiftKey && (active === first || active === e.currentTarget)) (e.preventDefault(), last.focus());
      else if (!e.shiftKey && active === last) (e.preventDefault(), first.focus());
    }
  };

  return (
    <dialog
      {...rest}
      ref={setRef}
      data-state={open ? "open" : "closed"}
      tabIndex={-1}
      onKeyDown={keys}
      // The browser's own close request (Escape, Android back): let React state decide.
      onCancel={(e) => (e.preventDefault(), onClose())}
      // A click on the dialog element itself, not its content, is a click on the backdrop.
      onClick={(e) => {
        rest.onClick?.(e);
        if (e.target === e.currentTarget && open) onClose();
      }}
    />
  );
});
