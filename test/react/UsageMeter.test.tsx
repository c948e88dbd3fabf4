import { screen, waitFor } from "@testing-library/react";
import { userEvent } from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { UsageMeter } from "../../src/react/index.js";
import { counter, sampleUsage } from "../../src/testing/index.js";
import { renderWithMeter } from "./render.js";

describe("UsageMeter", () => {
  it("is a meter of used + held over the total, with the numbers spelled out and the renewal date", async () => {
    const ref = { current: null as HTMLDivElement | null };
    const { container } = renderWithMeter(<UsageMeter ref={ref} className="mine" />, {
      usage: sampleUsage([counter({ used: 6_000, held: 1_500, granted: 5_000 })]),
    });
    const meter = await screen.findByRole("meter", { name: "Tokens used" });
    expect(meter).toHaveAttribute("aria-valuenow", "7500");
    expect(meter).toHaveAttribute("aria-valuemax", "25000");
    expect(meter).toHaveAttribute("aria-valuetext", "6,000 tokens used, 1,500 tokens held, 17,500 tokens left of 25,000 tokens");
    expect(container.querySelector(".mk-meter-used")).toHaveStyle({ width: "24%" });
    expect(container.querySelector(".mk-meter-held")).toHaveStyle({ width: "6%" });
    expect(ref.current).toHaveClass("mk-meter", "mine");
    expect(ref.current).toHaveAttribute("data-state", "ok");
    expect(ref.current).toHaveTextContent("incl. 5,000 tokens bought");
    expect(ref.current).toHaveTextContent("Renews Dec 1, 2026");
  });

  it.each([
    ["low", counter({ used: 18_500 })],
    ["empty", counter({ used: 20_000 })],
  ])("has data-state %s", async (state, c) => {
    const { container } = renderWithMeter(<UsageMeter />, { usage: sampleUsage([c]) });
    await waitFor(() => expect(container.firstChild).toHaveAttribute("data-state", state));
  });

  it("shows an unlimited counter as used + Unlimited, with no meter", async () => {
    const { container } = renderWithMeter(<UsageMeter />, { usage: sampleUsage([counter({ quota: null, used: 42_000 })]) });
    await waitFor(() => expect(container.firstChild).toHaveAttribute("data-state", "unlimited"));
    expect(container.firstChild).toHaveTextContent("42,000 tokens used");
    expect(container.firstChild).toHaveTextContent("Unlimited");
    expect(screen.queryByRole("meter")).toBeNull();
  });

  it("is busy while loading", () => {
    const { container } = renderWithMeter(<UsageMeter />, { pending: true });
    expect(container.firstChild).toHaveAttribute("data-state", "loading");
    expect(container.firstChild).toHaveAttribute("aria-busy", "true");
    expect(container.firstChild).toHaveTextContent("Loading usage…");
  });

  it("retries after an error", async () => {
    const { meter } = renderWithMeter(<UsageMeter />, { usageError: { status: 503, code: "unavailable", message: "down" }, provider: { live: false } });
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("Usage could not be loaded.");
    const before = meter.requests.length;
    await userEvent.click(screen.getByRole("button", { name: "Try again" }));
    await waitFor(() => expect(meter.requests.length).toBeGreaterThan(before));
  });
});
