// @vitest-environment node
import { QueryClient } from "@tanstack/react-query";
import { renderToString } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { AutoTopUpStatus, BalanceBadge, BuyCreditsButton, CreditPacks, LimitReachedDialog, MeterProvider, UsageHistory, UsageMeter, autoTopUpKey, meterKeys } from "../../src/react/index.js";
import { autoTopUpCounter, counter, sampleEntries, sampleHistory, samplePacks, sampleUsage } from "../../src/testing/index.js";

export function renderApp(queryClient: QueryClient) {
  return renderToString(
    <MeterProvider baseUrl="/api/meter" queryClient={queryClient} locale="en-US">
      <BalanceBadge />
      <BuyCreditsButton packId="pack_small" />
      <LimitReachedDialog />
    </MeterProvider>,
  );
}

/** The usage components from a cache the server filled (or an empty one). */
function renderUsage(queryClient: QueryClient, messages?: Record<string, string>) {
  return renderToString(
    <MeterProvider baseUrl="/api/meter" queryClient={queryClient} locale="en-US" messages={messages}>
      <UsageMeter />
      <CreditPacks />
      <UsageHistory days={7} pageSize={20} />
    </MeterProvider>,
  );
}

function filled() {
  const queryClient = new QueryClient();
  queryClient.setQueryData(meterKeys.usage("/api/meter"), sampleUsage([counter({ used: 6_000, held: 1_500 })]));
  queryClient.setQueryData(meterKeys.packs("/api/meter"), samplePacks);
  queryClient.setQueryData([...meterKeys.history("/api/meter"), 7], { days: sampleHistory(7) });
  queryClient.setQueryData([...meterKeys.entries("/api/meter"), 20], { pages: [{ entries: sampleEntries(4), nextCursor: null }], pageParams: [""] });
  return queryClient;
}

describe("server rendering", () => {
  it("renders without window or document, from a cache the server filled", () => {
    expect(typeof window).toBe("undefined");
    expect(typeof document).toBe("undefined");
    const queryClient = new QueryClient();
    queryClient.setQueryData(meterKeys.usage("/api/meter"), sampleUsage());
    const html = renderApp(queryClient);
    // The amount sits in a <bdi>: compare the text.
    expect(html.replace(/<[^>]+>/g, "")).toContain("12,340 tokens left");
    expect(html).toContain("<bdi>12,340 tokens</bdi> left");
    expect(html).toContain('data-state="ok"');
    expect(html).toContain("Buy credits");
    expect(html).not.toContain("<dialog");
  });

  it("renders the loading state when nothing is cached", () => {
    const html = renderApp(new QueryClient());
    expect(html).toContain("Loading balance…");
    expect(html).toContain('data-state="loading"');
  });

  it("renders UsageMeter, CreditPacks and UsageHistory from a filled cache", () => {
    const html = renderUsage(filled());
    expect(html).toContain('role="meter"');
    expect(html).toContain('aria-valuenow="7500"');
    expect(html).toContain("Starter · <bdi>100,000 tokens</bdi> · <bdi>$5.00</bdi>".replace("Starter · ", "<bdi>Starter</bdi> · "));
    expect(html).toContain("mk-history-bar-today");
    expect((html.match(/<rect /g) ?? []).length).toBe(7);
    expect(html).toContain('data-kind="grant"');
  });

  it("renders the usage components' loading states from an empty cache, in the provider's language", () => {
    const html = renderUsage(new QueryClient(), { meterLoading: "Lade Nutzung…", packsLoading: "Lade Pakete…", historyLoading: "Lade Verlauf…" });
    expect(html).toContain("Lade Nutzung…");
    expect(html).toContain("Lade Pakete…");
    expect(html).toContain("Lade Verlauf…");
    expect(html.match(/data-state="loading"/g)).toHaveLength(3);
  });

  it("renders AutoTopUpStatus from a filled cache, and loading from an empty one, in the provider's language", () => {
    const render = (queryClient: QueryClient) =>
      renderToString(
        <MeterProvider baseUrl="/api/meter" queryClient={queryClient} locale="de-DE" messages={{ autoTopUpLoading: "Lade…", autoTopUpOn: { other: "An unter {threshold}." } }}>
          <AutoTopUpStatus />
        </MeterProvider>,
      );
    const queryClient = new QueryClient();
    queryClient.setQueryData(autoTopUpKey("/api/meter"), { paymentMethodSaved: true, counters: [autoTopUpCounter({ threshold: 5_000 })] });
    const html = render(queryClient);
    expect(html).toContain('data-state="active"');
    expect(html).toContain("An unter <bdi>5.000</bdi>.");
    const loading = render(new QueryClient());
    expect(loading).toContain('data-state="loading"');
    expect(loading).toContain("Lade…");
  });
});
