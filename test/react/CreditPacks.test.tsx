import { screen, waitFor, within } from "@testing-library/react";
import { userEvent } from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { CreditPacks } from "../../src/react/index.js";
import { renderWithMeter } from "./render.js";

describe("CreditPacks", () => {
  it("lists the packs as buy buttons, outside any dialog, and buys one", async () => {
    const navigate = vi.fn();
    const onSuccess = vi.fn();
    const ref = { current: null as HTMLDivElement | null };
    renderWithMeter(<CreditPacks ref={ref} navigate={navigate} onSuccess={onSuccess} className="mine" />);
    const list = await screen.findByRole("list", { name: "Credit packs" });
    const buttons = within(list).getAllByRole("button");
    expect(buttons.map((b) => b.textContent)).toEqual(["Starter · 100,000 tokens · $5.00", "Pro · 1,000,000 tokens · $39.00"]);
    expect(ref.current).toHaveAttribute("data-state", "ready");
    expect(ref.current).toHaveClass("mk-packs", "mine");
    await userEvent.click(buttons[1]!);
    await waitFor(() => expect(navigate).toHaveBeenCalledWith("https://checkout.example/session/pack_large"));
    expect(onSuccess).toHaveBeenCalledWith("https://checkout.example/session/pack_large", "pack_large");
  });

  it("takes formatPack for the button content", async () => {
    renderWithMeter(<CreditPacks formatPack={({ pack, price }) => <span>{`${pack.label}: ${price}`}</span>} />);
    expect(await screen.findByRole("button", { name: "Starter: $5.00" })).toBeInTheDocument();
  });

  it("says when none is for sale, and filters by counter", async () => {
    const { container } = renderWithMeter(<CreditPacks counter="credits" />);
    await waitFor(() => expect(container.firstChild).toHaveAttribute("data-state", "empty"));
    expect(container.firstChild).toHaveTextContent("No credit packs are available right now.");
  });

  it("is busy while loading", () => {
    const { container } = renderWithMeter(<CreditPacks />, { packsPending: true });
    expect(container.firstChild).toHaveAttribute("data-state", "loading");
    expect(container.firstChild).toHaveAttribute("aria-busy", "true");
    expect(container.firstChild).toHaveTextContent("Loading packs…");
  });

  it("puts a failed load in an alert with a retry that works", async () => {
    const { meter } = renderWithMeter(<CreditPacks />, { packsError: { status: 503, code: "unavailable", message: "down" } });
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("Packs could not be loaded.");
    meter.recover();
    await userEvent.click(within(alert).getByRole("button", { name: "Try again" }));
    expect(await screen.findByRole("list", { name: "Credit packs" })).toBeInTheDocument();
  });
});
