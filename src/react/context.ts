import { createContext, useContext } from "react";
import type { QueryClient } from "@tanstack/react-query";
import type { LimitReachedStore } from "./limitReachedStore.js";
import type { MeterMessagesInput } from "./messages.js";
import type { MeterProviderProps } from "./MeterProvider.js";
import type { Transport } from "./request.js";

/** How the balance stays fresh: a Server-Sent Events stream, polling, or only on demand. */
export type LiveMode = "sse" | "poll" | false;

/** The provider's value; as a `Transport` it is what `send` and `request` call the meter routes with. */
export interface MeterContextValue extends Transport {
  own: ProviderInstance;
  queryClient: QueryClient;
  live: LiveMode;
  /** True while the SSE stream is connected; polling takes over while it is not. */
  streaming: boolean;
  pollInterval: number;
  locale: string | undefined;
  /** The provider's `messages` (only what the app overrides; components add their defaults). */
  messages: MeterMessagesInput | undefined;
}

/** What one provider keeps across renders. */
export interface ProviderInstance {
  /** The latest props (its `fetch` and `headers` are read per request). */
  props: MeterProviderProps;
  /** The QueryClient it made, when neither a prop nor the app gave one. */
  client?: QueryClient;
  /**
   * Its limit-reached store when the app gave none, made on first use by {@link limitStoreOf}
   * (zustand's pattern for state that belongs to one provider; a page with only a badge never
   * loads the store's code).
   */
  limitStore?: LimitReachedStore;
}

export const MeterContext = createContext<MeterContextValue | null>(null);

/** The provider's value; `caller` names the hook or component in the error thrown outside a provider. */
export function useMeterContext(caller: string): MeterContextValue {
  const ctx = useContext(MeterContext);
  if (!ctx) throw new Error(`${caller} must be used inside <MeterProvider>.`);
  return ctx;
}

/** The provider's messages over a component's English defaults. */
export function useMessages<T extends object>(ctx: MeterContextValue, defaults: T): T {
  return { ...defaults, ...(ctx.messages as Partial<T>) };
}
