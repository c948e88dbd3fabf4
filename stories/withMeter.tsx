/**
 * The stories' decorator: a MeterProvider over a fake meter (no server), configured per story
 * through `parameters.meter`, with a fresh QueryClient and limit store per story.
 */
import type { Decorator } from "@storybook/react-vite";
import { QueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { MeterProvider, useLimitReached, type LiveMode } from "../src/react/index.js";
import { createFakeMeter, type FakeMeterOptions } from "../src/testing/createFakeMeter.js";

export interface MeterParameters extends FakeMeterOptions {
  /** The provider's live mode. Default `"sse"`. */
  live?: LiveMode;
  /** The provider's locale. Default `"en-US"`. */
  locale?: string;
}

declare module "@storybook/react-vite" {
  interface Parameters {
    meter?: MeterParameters;
    /** Render the story on the dark theme. */
    theme?: "light" | "dark";
  }
}

export const withMeter: Decorator = (Story, { parameters }) => {
  const options: MeterParameters = parameters.meter ?? {};
  const [setup] = useState(() => {
    useLimitReached.setState({ isOpen: false, info: null });
    return {
      meter: createFakeMeter(options),
      // Error stories should show the error now, not after three retries.
      client: new QueryClient({ defaultOptions: { queries: { retry: false } } }),
    };
  });
  useEffect(() => () => setup.client.clear(), [setup]);
  const theme = parameters.theme ?? "light";
  return (
    <div data-theme={theme} className="story-surface">
      <MeterProvider baseUrl="/api/meter" fetch={setup.meter.fetch} queryClient={setup.client} live={options.live ?? "sse"} locale={options.locale ?? "en-US"}>
        <Story />
      </MeterProvider>
    </div>
  );
};
