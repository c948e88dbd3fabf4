import { useEffect, useRef, useState } from "react";

export interface ResetButtonProps {
  onReset: () => Promise<void>;
  disabled?: boolean;
}

/** "Reset demo", with a confirmation step in place (no browser `confirm()` pop-up). */
export function ResetButton({ onReset, disabled }: ResetButtonProps) {
  const [state, setState] = useState<"idle" | "confirm" | "pending" | "error">("idle");
  const confirmRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (state === "confirm") confirmRef.current?.focus();
  }, [state]);

  if (state === "confirm" || state === "pending") {
    return (
      <span className="demo-confirm" role="group" aria-label="Confirm reset">
        <span className="demo-confirm-text">Erase usage and purchases?</span>
        <button
          ref={confirmRef}
          type="button"
          className="demo-button demo-button-danger"
          aria-busy={state === "pending" || undefined}
          onClick={async () => {
            setState("pending");
            try {
              await onReset();
              setState("idle");
            } catch {
              setState("error");
            }
          }}
        >
          Reset
        </button>
        <button type="button" className="demo-button" onClick={() => setState("idle")}>
          Cancel
        </button>
      </span>
    );
  }
  return (
    <button
      type="button"
      className="demo-button"
      disabled={disabled}
      title={disabled ? "Wait for the reply to finish" : "Erase the demo user’s usage, holds and purchases: back to the full allowance"}
      onClick={() => setState("confirm")}
    >
      {state === "error" ? "Reset failed, retry" : "Reset demo"}
    </button>
  );
}
