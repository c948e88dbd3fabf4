import { QueryClient } from "@tanstack/react-query";
import { render } from "@testing-library/react";
import type { ReactNode } from "react";
import { createLimitReachedStore, MeterProvider, type MeterProviderProps } from "../../src/react/index.js";
import { createFakeMeter, type FakeMeterOptions } from "../../src/testing/index.js";

/** Renders `ui` inside a MeterProvider over a fake meter; returns the meter, the QueryClient and the limit store too. */
export function renderWithMeter(ui: ReactNode, options: FakeMeterOptions & { provider?: Partial<MeterProviderProps> } = {}) {
  const meter = createFakeMeter(options);
  const queryClient = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  const store = createLimitReachedStore();
  const utils = render(
    <MeterProvider baseUrl="/api/meter" fetch={meter.fetch} queryClient={queryClient} locale="en-US" limitReachedStore={store} {...options.provider}>
      {ui}
    </MeterProvider>,
  );
  return { ...utils, meter, queryClient, store };
}
