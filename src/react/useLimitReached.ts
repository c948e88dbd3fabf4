import { create } from "zustand";

/** Which counter ran out, as a 402 `limit_reached` answer (or a `LimitReachedError`) says. */
export interface LimitReachedInfo {
  /** The counter key, e.g. `"tokens"`. */
  counter: string;
  /** What was left when the request was refused. */
  remaining: number;
  /** What the request needed. */
  required: number;
  message?: string;
}

export interface LimitReachedState {
  /** True while a limit-reached event waits to be shown (or is shown) by `LimitReachedDialog`. */
  isOpen: boolean;
  /** The last event; kept after `close()` so a closing animation can still read it. */
  info: LimitReachedInfo | null;
  /** Opens every mounted `LimitReachedDialog`, optionally with what ran out. */
  open: (info?: LimitReachedInfo) => void;
  close: () => void;
}

/**
 * The limit-reached store (zustand). `useLimitReached()` in components,
 * `useLimitReached.getState().open(err)` anywhere else, e.g. after catching a `LimitReachedError`.
 * It holds UI state only, so one store per page is right; nothing opens it during server rendering.
 */
export const useLimitReached = create<LimitReachedState>()((set) => ({
  isOpen: false,
  info: null,
  open: (info) =>
    set((s) => ({
      isOpen: true,
      // Copy the fields: a LimitReachedError instance should not live in the store.
      info: info ? { counter: info.counter, remaining: info.remaining, required: info.required, message: info.message } : s.info,
    })),
  close: () => set({ isOpen: false }),
}));
