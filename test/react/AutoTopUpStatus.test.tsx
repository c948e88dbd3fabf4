import { QueryClient } from "@tanstack/react-query";
import { render, screen, waitFor } from "@testing-library/react";
import { userEvent } from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { AutoTopUpStatus, MeterProvider, useAutoTopUp, type MeterProviderProps } from "../../src/react/index.js";
import { de } from "../../stories/messages.js";
import { autoTopUpCounter, createFakeAutoTopUp, type FakeAutoTopUpOptions } from "../../src/testing/index.js";

function renderStatus(ui: React.ReactNode, options: FakeAutoTopUpOptions, provider: Partial<MeterProviderProps> = {}) {
  const fake = createFakeAutoTopUp(options);
  const queryClient = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  const utils = render(
    <MeterProvider baseUrl="/api/meter" fetch={fake.fetch} queryClient={queryClient} live={false} locale="en-US" {...provider}>
      {ui}
    </MeterProvider>,
  );
  return { ...utils, fake, queryClient };
}

describe("AutoTopUpStatus", () => {
  it("says it is off when never set up", async () => {
    const { container } = renderStatus(<AutoTopUpStatus />, {});
    await waitFor(() => expect(screen.getByRole("status")).toHaveTextContent("Auto top-up is off."), { timeout: 5000 });
    expect(container.firstElementChild).toHaveAttribute("data-state", "off");
    expect(screen.queryByRole("button")).toBeNull();
  });

  it("says it is on, with the threshold", async () => {
    renderStatus(<AutoTopUpStatus counter="tokens" />, { counters: [autoTopUpCounter()] });
    await waitFor(() => expect(screen.getByRole("status")).toHaveTextContent("Auto top-up is on: credits are bought when fewer than 5,000 remain."));
  });

  it("paused: shows the reason and a button that opens the card-saving Checkout", async () => {
    const navigate = vi.fn();
    const { fake, container } = renderStatus(<AutoTopUpStatus navigate={navigate} />, {
      counters: [autoTopUpCounter({ status: "paused", pausedReason: "requires_action", pausedMessage: "x" })],
    });
    await waitFor(() => expect(screen.getByRole("status")).toHaveTextContent("Auto top-up is paused. Your bank asked to confirm the payment (3-D Secure)."));
    expect(container.firstElementChild).toHaveAttribute("data-state", "paused");
    await userEvent.click(screen.getByRole("button", { name: "Update card" }));
    await waitFor(() => expect(navigate).toHaveBeenCalledWith("https://checkout.example/setup"));
    expect(fake.requests.map((r) => `${r.method} ${r.path}`)).toContain("POST /auto-top-up/setup");
  });

  it("takes its strings from the provider's messages: plural rule on the threshold, reasons, buttons", async () => {
    const messages = {
      autoTopUpOn: { one: "Automatisch: unter {threshold} Token wird nachgekauft.", other: "Automatisch: unter {threshold} Tokens wird nachgekauft." },
      autoTopUpPaused: "Pausiert.",
      autoTopUpFixCard: "Karte ändern",
    };
    const { unmount } = renderStatus(<AutoTopUpStatus />, { counters: [autoTopUpCounter({ threshold: 5_000 })] }, { locale: "de-DE", messages });
    await waitFor(() => expect(screen.getByRole("status")).toHaveTextContent("Automatisch: unter 5.000 Tokens wird nachgekauft."));
    // The amount sits in <bdi>, so right-to-left text keeps it whole.
    expect(screen.getByRole("status").querySelector("bdi")).toHaveTextContent("5.000");
    unmount();
    renderStatus(<AutoTopUpStatus />, { counters: [autoTopUpCounter({ threshold: 1 })] }, { locale: "de-DE", messages });
    await waitFor(() => expect(screen.getByRole("status")).toHaveTextContent("Automatisch: unter 1 Token wird nachgekauft."));
  });

  it("a paused top-up says the translated reason, never the server's English message", async () => {
    renderStatus(
      <AutoTopUpStatus />,
      { counters: [autoTopUpCounter({ status: "paused", pausedReason: "card_declined", pausedMessage: "Your card was declined." })] },
      { messages: { autoTopUpPaused: "Pausiert.", autoTopUpReasons: de.autoTopUpReasons, autoTopUpFixCard: "Karte ändern" } },
    );
    await waitFor(() => expect(screen.getByRole("status")).toHaveTextContent(`Pausiert. ${de.autoTopUpReasons.card_declined}`));
    expect(screen.getByRole("button", { name: "Karte ändern" })).toBeInTheDocument();
  });

  it("a load error is an alert with a retry that loads again", async () => {
    const fake = createFakeAutoTopUp({ counters: [autoTopUpCounter()] });
    let fail = true;
    const fetchImpl: typeof fetch = async (input, init) =>
      fail ? new Response(JSON.stringify({ error: { code: "unavailable", message: "down" } }), { status: 503 }) : fake.fetch(input, init);
    const queryClient = new QueryClient({ defaultOptions: { queries: { retry: false } } });
    const { container } = render(
      <MeterProvider baseUrl="/api/meter" fetch={fetchImpl} queryClient={queryClient} live={false} locale="en-US">
        <AutoTopUpStatus />
      </MeterProvider>,
    );
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("Auto top-up could not be loaded.");
    expect(container.firstElementChild).toHaveAttribute("data-state", "error");
    fail = false;
    await userEvent.click(screen.getByRole("button", { name: "Try again" }));
    await waitFor(() => expect(container.firstElementChild).toHaveAttribute("data-state", "active"));
    expect(screen.queryByRole("alert")).toBeNull();
  });

  it("useAutoTopUp.update PUTs the settings and refreshes the state under [\"meterkit\", \"autoTopUp\"]", async () => {
    function Toggle() {
      const { state, update } = useAutoTopUp({ counter: "tokens" });
      return (
        <button type="button" onClick={() => void update({ counter: "tokens", enabled: !state?.enabled, packId: "pack_small", threshold: 100, maxPerPeriod: 1000 })}>
          {state?.enabled ? "on" : "off"}
        </button>
      );
    }
    const { fake, queryClient } = renderStatus(<Toggle />, {});
    await waitFor(() => expect(screen.getByRole("button")).toHaveTextContent("off"));
    await userEvent.click(screen.getByRole("button"));
    await waitFor(() => expect(screen.getByRole("button")).toHaveTextContent("on"));
    expect(fake.requests.find((r) => r.method === "PUT")!.body).toEqual({ counter: "tokens", enabled: true, packId: "pack_small", threshold: 100, maxPerPeriod: 1000 });
    expect(queryClient.getQueryCache().findAll({ queryKey: ["meterkit", "autoTopUp"] })).toHaveLength(1);
  });
});
