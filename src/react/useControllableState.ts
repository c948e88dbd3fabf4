import { useCallback, useRef, useState } from "react";

export interface UseControllableStateOptions<T> {
  /** The controlled value; `undefined` leaves the state to the component. */
  prop: T | undefined;
  /** The initial uncontrolled value. */
  defaultProp: T;
  /** Told about every change request, controlled or not. */
  onChange?: ((value: T) => void) | undefined;
}

/** Radix's pattern: one state that is controlled when `prop` is given and uncontrolled otherwise. */
export function useControllableState<T>({ prop, defaultProp, onChange }: UseControllableStateOptions<T>): [T, (value: T) => void] {
  const [own, setOwn] = useState(defaultProp);
  const controlled = prop !== undefined;
  const value = controlled ? prop : own;
  const latest = useRef({ value, controlled, onChange });
  latest.current = { value, controlled, onChange };
  const setValue = useCallback((next: T) => {
    const { value: current, controlled: isControlled, onChange: notify } = latest.current;
    if (Object.is(next, current)) return;
    if (!isControlled) setOwn(next);
    notify?.(next);
  }, []);
  return [value, setValue];
}
