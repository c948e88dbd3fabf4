import { QueryClient, QueryClientContext } from "@tanstack/react-query";
import { createElement, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { MeterContext, type LiveMode, type MeterContextValue, type ProviderInstance } from "./context.js";
import type { LimitReachedStore } from "./limitReachedStore.js";
import type { MeterMessagesInput } from "./messages.js";
import { send, type HeadersOption } from "./request.js";
import { openUsageStream } from "./usageStream.js";
import { writeUsage } from "./writeUsage.js";

export interface MeterProviderProps {
  /** Where the host app mounted the meter routes, e.g. `"/api/meter"` or `"https://api.example.com/meter"`. */
  baseUrl: string;
  /**
   * The QueryClient the kit caches in. Default: the app's (from its `QueryClientProvider`), else
   * one the provider creates. The kit never adds a second `QueryClientProvider`.
   */
  queryClient?: QueryClient;
  /**
   * How the balance stays fresh. `"sse"` (default) follows `GET /usage/stream` and polls only
   * while the stream is down; `"poll"` refetches every `pollInterval`; `false` fetches on
   * mount, on window focus and after metered requests.
   */
  live?: LiveMode;
  /** Milliseconds between refetches while polling. Default `30000`. */
  pollInterval?: number;
  /** The fetch used for every meter route, the stream, and `useMeteredFetch`. Default: the global `fetch`. */
  fetch?: typeof fetch;
  /** Headers for every meter route (the stream too), or a function returning them. Default: none. */
  headers?: HeadersOption;
  /**
   * BCP 47 locale for numbers and dates, e.g. `"de-DE"`. Default: the runtime's. Set it when
   * rendering on the server so server and browser format alike.
   */
  locale?: string;
  /**
   * Every built-in string of the kit's components, any subset (the rest stays English). Pass
   * the same `locale` so plural rules, numbers and dates match. Default: English.
   */
  messages?: MeterMessagesInput;
  /**
   * The limit-reached store of this provider. Default: one the provider creates (each provider
   * has its own). Pass one from `createLimitReachedStore()` to open the dialog from outside React.
   */
  limitReachedStore?: LimitReachedStore;
  children?: ReactNode;
}

/** Gives the kit's hooks and components their server, cache and live updates. */
export function MeterProvider(props: MeterProviderProps) {
  const { live = "sse", pollInterval = 30_000, locale, messages } = props;
  const baseUrl = props.baseUrl.replace(/\/+$/, "");
  const appClient = useContext(QueryClientContext);
  // This provider's own state across renders. Its latest props are read through it, so an inline
  // `headers={{…}}` or `fetch={…}` restarts neither the stream nor the queries.
  const own = useRef<ProviderInstance>({ props }).current;
  own.props = props;
  const client = props.queryClient ?? appClient ?? (own.client ??= new QueryClient());
  const [streaming, setStreaming] = useState(false);

  useEffect(() => {
    // What QueryClientProvider would do: start focus and online tracking (reference-counted).
    client.mount();
    return () => client.unmount();
  }, [client]);

  useEffect(
    () =>
      live == "sse"
        ? openUsageStream(
            (signal) => send({ baseUrl, own }, "/usage/stream", { headers: { accept: "text/event-stream" }, signal }),
            (usage) => writeUsage(client, baseUrl, usage),
            setStreaming,
          )
        : undefined,
    [live, baseUrl, client],
  );

  const value = useMemo<MeterContextValue>(
    () => ({ baseUrl, own, queryClient: client, live, streaming, pollInterval, locale, messages }),
    // A new limitReachedStore prop is read through `own`; consumers re-render to pick it up.
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [baseUrl, client, live, streaming, pollInterval, locale, messages, props.limitReachedStore],
  );
  // createElement, not JSX: this file then needs no react/jsx-runtime import (a few bytes on every page).
  return createElement(MeterContext.Provider, { value }, props.children);
}
