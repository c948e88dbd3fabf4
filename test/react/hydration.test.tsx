import { QueryClient } from "@tanstack/react-query";
import { act } from "@testing-library/react";
import { hydrateRoot } from "react-dom/client";
import { renderToString } from "react-dom/server";
import { describe, expect, it, vi } from "vitest";
import { BalanceBadge, BuyCreditsButton, LimitReachedDialog, MeterProvider, meterKeys } from "../../src/react/index.js";
import { createFakeMeter, sampleUsage } from "../../src/testing/index.js";

describe("hydration", () => {
  it("hydrates the server's HTML without a mismatch", async () => {
    const meter = createFakeMeter();
    const app = (client: QueryClient) => (
      <MeterProvider baseUrl="/api/meter" queryClient={client} fetch={meter.fetch} locale="en-US">
        <BalanceBadge />
        <BuyCreditsButton packId="pack_small" />
        <LimitReachedDialog />
      </MeterProvider>
    );
    const seeded = () => {
      const client = new QueryClient();
      client.setQueryData(meterKeys.usage("/api/meter"), sampleUsage());
      return client;
    };
    const container = document.createElement("div");
    container.innerHTML = renderToString(app(seeded()));
    document.body.append(container);
    const onRecoverableError = vi.fn();
    const consoleError = vi.spyOn(console, "error");
    const root = await act(async () => hydrateRoot(container, app(seeded()), { onRecoverableError }));
    expect(onRecoverableError).not.toHaveBeenCalled();
    expect(consoleError).not.toHaveBeenCalled();
    expect(container.textContent).toContain("12,340 tokens left");
    act(() => root.unmount());
    container.remove();
  });
});
