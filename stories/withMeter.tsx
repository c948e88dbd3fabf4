/**
 * The stories' decorator: a MeterProvider over a fake meter (no server), configured per story
 * through `parameters.meter`, with a fresh QueryClient and its own limit store per story (each
 * provider has one), the story's theme, language and direction.
 */
import type { Decorator } from "@storybook/react-vite";
import { QueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { createLimitReachedStore, MeterProvider, type LimitReachedInfo, type LiveMode, type MeterMessagesInput } from "../src/react/index.js";
import { createFakeMeter, type FakeMeterOptions } from "../src/testing/createFakeMeter.js";
import { ar, de } from "./messages.js";

export interface MeterParameters extends FakeMeterOptions {
  /** The provider's live mode. Default `"sse"`. */
  live?: LiveMode;
  /** The provider's locale. Default `"en-US"`. */
  locale?: string;
  /** The provider's messages. Default: English. */
  messages?: MeterMessagesInput;
  /** The limit store starts open with this event (the static limit-reached state). */
  limitOpen?: LimitReachedInfo;
}

declare module "@storybook/react-vite" {
  interface Parameters {
    meter?: MeterParameters;
    /** Render the story on the dark theme. */
    theme?: "light" | "dark";
    /** Render the story in German (`de`) or Arabic (`ar`, right to left): every string translated. */
    language?: "de" | "ar";
  }
}

/** The story languages: locale, every message translated, and the text direction. */
export const LANGUAGES = { de: { locale: "de-DE", messages: de, dir: "ltr" }, ar: { locale: "ar-EG", messages: ar, dir: "rtl" } } as const;

export const withMeter: Decorator = (Story, { parameters }) => {
  const options: MeterParameters = parameters.meter ?? {};
  const language = parameters.language ? LANGUAGES[parameters.language] : undefined;
  const [setup] = useState(() => {
    const store = createLimitReachedStore();
    if (options.limitOpen) store.getState().open(options.limitOpen);
    return {
      meter: createFakeMeter(options),
      store,
      // Error stories should show the error now, not after three retries.
      client: new QueryClient({ defaultOptions: { queries: { retry: false } } }),
    };
  });
  useEffect(() => () => setup.client.clear(), [setup]);
  const theme = parameters.theme ?? "light";
  return (
    <div data-theme={theme} className="story-surface" dir={language?.dir} lang={language?.locale ?? "en-US"}>
      <MeterProvider
        baseUrl="/api/meter"
        fetch={setup.meter.fetch}
        queryClient={setup.client}
        live={options.live ?? "sse"}
        locale={language?.locale ?? options.locale ?? "en-US"}
        messages={language?.messages ?? options.messages}
        limitReachedStore={setup.store}
      >
        <Story />
      </MeterProvider>
    </div>
  );
};
