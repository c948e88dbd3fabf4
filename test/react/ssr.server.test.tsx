// @vitest-environment node
import { QueryClient } from "@tanstack/react-query";
import { renderToString } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { BalanceBadge, BuyCreditsButton, LimitReachedDialog, MeterProvider, meterKeys } from "../../src/react/index.js";
import { sampleUsage } from "../../src/testing/index.js";

export function renderApp(queryClient: QueryClient) {
  return renderToString(
    <MeterProvider baseUrl="/api/meter" queryClient={queryClient} locale="en-US">
      <BalanceBadge />
      <BuyCreditsButton packId="pack_small" />
      <LimitReachedDialog />
    </MeterProvider>,
  );
}

describe("server rendering", () => {
  it("renders without window or document, from a cache the server filled", () => {
    expect(typeof window).toBe("undefined");
    expect(typeof document).toBe("undefined");
    const queryClient = new QueryClient();
    queryClient.setQueryData(meterKeys.usage("/api/meter"), sampleUsage());
    const html = renderApp(queryClient);
    expect(html).toContain("12,340 tokens left");
    expect(html).toContain('data-state="ok"');
    expect(html).toContain("Buy credits");
    expect(html).not.toContain("<dialog");
  });

  it("renders the loading state when nothing is cached", () => {
    const html = renderApp(new QueryClient());
    expect(html).toContain("Loading balance…");
    expect(html).toContain('data-state="loading"');
  });
});
