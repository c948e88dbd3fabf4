import { createStore, type StoreApi } from "zustand/vanilla";
import type { MeterContextValue } from "./context.js";

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
  /** Opens the provider's `LimitReachedDialog`, optionally with what ran out. */
  open: (info?: LimitReachedInfo) => void;
  close: () => void;
}

/** A limit-reached store (zustand, vanilla). */
export type LimitReachedStore = StoreApi<LimitReachedState>;

/**
 * Creates a limit-reached store. Each `MeterProvider` creates its own, so two providers on one
 * page (two apps, micro-frontends, stories) never open each other's dialog. Create one yourself
 * and pass it as `MeterProvider limitReachedStore` to open the dialog from outside React, e.g.
 * `withLimitReached(fetch, store)`.
 */
export function createLimitReachedStore(): LimitReachedStore {
  return createStore<LimitReachedState>()((set) => ({
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
}

/** The provider's store: the app's, else its own, created the first time a hook or component asks for it. */
export function limitStoreOf({ own }: MeterContextValue): LimitReachedStore {
  return own.props.limitReachedStore ?? (own.limitStore ??= createLimitReachedStore());
}
