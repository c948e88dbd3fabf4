import { useEffect, useRef, type KeyboardEvent, type ReactNode } from "react";

const FOCUSABLE = 'a[href],button:not([disabled]),input:not([disabled]),select:not([disabled]),textarea:not([disabled]),[tabindex]:not([tabindex="-1"])';

export interface ModalProps {
  onClose: () => void;
  className: string;
  labelledBy: string;
  describedBy: string;
  children: ReactNode;
}

/**
 * A modal `<dialog>`: `showModal()` makes the rest of the page inert and puts it in the top
 * layer. Where `showModal` is missing (jsdom, old browsers) it falls back to an open dialog with
 * the same keyboard rules. Tab is trapped either way, Escape and a backdrop click close it, and
 * focus goes back where it was. Mount it to open, unmount to close.
 */
export function Modal({ onClose, className, labelledBy, describedBy, children }: ModalProps) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    const previous = document.activeElement as HTMLElement | null;
    if (typeof dialog.showModal === "function") dialog.showModal();
    else dialog.setAttribute("open", "");
    if (!dialog.contains(document.activeElement)) (dialog.querySelector<HTMLElement>(FOCUSABLE) ?? dialog).focus();
    return () => {
      if (typeof dialog.close === "function") dialog.close();
      previous?.focus?.();
    };
  }, []);

  const onKeyDown = (e: KeyboardEvent<HTMLDialogElement>) => {
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
      ref={ref}
      className={className}
      aria-labelledby={labelledBy}
      aria-describedby={describedBy}
      tabIndex={-1}
      onKeyDown={onKeyDown}
      // The browser's own close request (Escape, Android back): let React state decide.
      onCancel={(e) => (e.preventDefault(), onClose())}
      // A click on the dialog element itself, not its content, is a click on the backdrop.
      onClick={(e) => e.target === e.currentTarget && onClose()}
    >
      {children}
    </dialog>
  );
}
