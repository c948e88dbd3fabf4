import { forwardRef, useId, type ButtonHTMLAttributes, type MouseEvent } from "react";
import { composeEventHandlers } from "./composeEventHandlers.js";
import { useMeterContext, useMessages } from "./context.js";
import { cx } from "./cx.js";
import { Slot } from "./Slot.js";
import { useCheckout, type UseCheckoutOptions } from "./useCheckout.js";

export interface BuyCreditsButtonProps extends Omit<ButtonHTMLAttributes<HTMLButtonElement>, "onError">, Omit<UseCheckoutOptions, "queryClient"> {
  /** The pack to buy (an `id` from `GET /packs`). */
  packId: string;
  /**
   * Render the only child (your own button or link component) instead of a `<button>`, with the
   * kit's props, handlers and ref merged in, and none of the kit's classes: the child keeps its
   * own design (style it by `data-state`). Default `false`.
   */
  asChild?: boolean;
  /** Show the error message next to the button when checkout fails. Default `true`. */
  showError?: boolean;
  /** Class for the error message. */
  errorClassName?: string;
}

export const BUY_MESSAGES = { buy: "Buy credits", buyPending: "Opening checkout…" };

/**
 * Buys a credit pack: posts `/checkout` and goes to the Stripe Checkout page it returns.
 * `data-state` is `idle`, `pending`, `success` or `error`; while pending the button shows a
 * spinner and `aria-busy`. An `onClick` that calls `preventDefault()` cancels it.
 */
export const BuyCreditsButton = forwardRef<HTMLButtonElement, BuyCreditsButtonProps>(function BuyCreditsButton(
  { packId, successUrl, cancelUrl, navigate, onSuccess, onError, asChild = false, showError = true, errorClassName, onClick, className, children, ...rest },
  ref,
) {
  const ctx = useMeterContext("BuyCreditsButton");
  const t = useMessages(ctx, BUY_MESSAGES);
  const { checkout, status, error } = useCheckout({ successUrl, cancelUrl, navigate, onSuccess, onError });
  const errorId = useId();
  const pending = status === "pending";
  const Comp = asChild ? Slot : "button";
  return (
    <>
      <Comp
        type={asChild ? undefined : "button"}
        {...rest}
        ref={ref as never}
        className={asChild ? className : cx("mk-buy", className)}
        data-state={status}
        // aria-disabled rather than disabled: a disabled button drops keyboard focus mid-click.
        aria-disabled={pending || rest["aria-disabled"] || undefined}
        aria-busy={pending || undefined}
        aria-describedby={error && showError ? errorId : rest["aria-describedby"]}
        onClick={composeEventHandlers(onClick, (e: MouseEvent<HTMLButtonElement>) => {
          if (!pending && !rest.disabled) void checkout(packId);
          // Keep a link child from following its href while the session is created.
          if (asChild) e.preventDefault();
        })}
      >
        {asChild ? (
          children
        ) : (
          <>
            {children ?? t.buy}
            {pending && (
              <span className="mk-spinner" role="img" aria-label={t.buyPending} />
            )}
          </>
        )}
      </Comp>
      {error && showError && (
        <span id={errorId} role="alert" className={cx("mk-buy-error", errorClassName)}>
          {error.message}
        </span>
      )}
    </>
  );
});
