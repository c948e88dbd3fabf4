import { QueryClient } from "@tanstack/react-query";
import { render, screen, waitFor } from "@testing-library/react";
import { userEvent } from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { AutoTopUpStatus, MeterProvider, useAutoTopUp } from "../../src/react/index.js";
import { autoTopUpCounter, createFakeAutoTopUp, type FakeAutoTopUpOptions } from "../../src/testing/index.js";

function renderStatus(ui: React.ReactNode, options: FakeAutoTopUpOptions) {
  const fake = createFakeAutoTopUp(options);
  const queryClient = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  const utils = render(
    <MeterProvider baseUrl="/api/meter" fetch={fake.fetch} queryClient={queryClient} live={false} locale="en-US">
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
