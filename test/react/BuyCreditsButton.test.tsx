import { screen, waitFor } from "@testing-library/react";
import { userEvent } from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { BuyCreditsButton, isMeterError } from "../../src/react/index.js";
import { renderWithMeter } from "./render.js";

describe("BuyCreditsButton", () => {
  it("posts /checkout for the pack and navigates to the returned URL", async () => {
    const navigate = vi.fn();
    const onSuccess = vi.fn();
    const { meter } = renderWithMeter(<BuyCreditsButton packId="pack_small" successUrl="https://app/ok" cancelUrl="https://app/no" navigate={navigate} onSuccess={onSuccess} />, {
      checkoutDelay: 300,
    });
    const button = screen.getByRole("button", { name: "Buy credits" });
    await userEvent.click(button);
    expect(button).toHaveAttribute("data-state", "pending");
    expect(button).toHaveAttribute("aria-busy", "true");
    // Visible pending state: a spinner, named for screen readers.
    expect(screen.getByRole("img", { name: "Opening checkout…" })).toHaveClass("mk-spinner");
    await userEvent.click(button); // a second click while pending creates no second session
    await waitFor(() => expect(navigate).toHaveBeenCalledWith("https://checkout.example/session/pack_small"));
    expect(onSuccess).toHaveBeenCalledWith("https://checkout.example/session/pack_small", "pack_small");
    const posts = meter.requests.filter((r) => r.method === "POST");
    expect(posts).toEqual([{ method: "POST", url: "/api/meter/checkout", body: { packId: "pack_small", successUrl: "https://app/ok", cancelUrl: "https://app/no" } }]);
  });

  it("goes to the URL with window.location.assign by default and stays pending", async () => {
    const assign = vi.fn();
    vi.spyOn(window, "location", "get").mockReturnValue({ ...window.location, assign });
    renderWithMeter(<BuyCreditsButton packId="pack_large" />);
    await userEvent.click(screen.getByRole("button"));
    await waitFor(() => expect(assign).toHaveBeenCalledWith("https://checkout.example/session/pack_large"));
    expect(screen.getByRole("button")).toHaveAttribute("data-state", "pending");
    vi.restoreAllMocks();
  });

  it("shows the server's error next to the button", async () => {
    const onError = vi.fn();
    const onSuccess = vi.fn();
    renderWithMeter(<BuyCreditsButton packId="nope" navigate={vi.fn()} onError={onError} onSuccess={onSuccess} />, {
      checkoutError: { status: 404, code: "not_found", message: "Unknown pack." },
    });
    await userEvent.click(screen.getByRole("button"));
    expect(await screen.findByRole("alert")).toHaveTextContent("Unknown pack.");
    expect(screen.getByRole("button")).toHaveAttribute("data-state", "error");
    expect(screen.getByRole("button")).toHaveAccessibleDescription("Unknown pack.");
    expect(onError.mock.calls[0]).toEqual([expect.objectContaining({ code: "not_found", status: 404 }), "nope"]);
    expect(isMeterError(onError.mock.calls[0]![0])).toBe(true);
    expect(onSuccess).not.toHaveBeenCalled();
  });

  it("does nothing when a consumer onClick calls preventDefault", async () => {
    const navigate = vi.fn();
    const { meter } = renderWithMeter(<BuyCreditsButton packId="pack_small" navigate={navigate} onClick={(e) => e.preventDefault()} />);
    await userEvent.click(screen.getByRole("button"));
    await new Promise((r) => setTimeout(r, 20));
    expect(meter.requests.some((r) => r.method === "POST")).toBe(false);
    expect(navigate).not.toHaveBeenCalled();
  });

  it("asChild lends its behaviour, props and ref to the child element, and none of the kit's classes", async () => {
    const navigate = vi.fn();
    const childClick = vi.fn();
    const ours = { current: null as HTMLButtonElement | null };
    const theirs = { current: null as HTMLAnchorElement | null };
    renderWithMeter(
      <BuyCreditsButton packId="pack_small" navigate={navigate} asChild className="kit" ref={ours}>
        <a href="#buy" className="app" onClick={childClick} ref={theirs}>
          Top up
        </a>
      </BuyCreditsButton>,
    );
    const link = screen.getByRole("link", { name: "Top up" });
    expect(link).toHaveClass("kit", "app");
    expect(link).not.toHaveClass("mk-buy");
    expect(ours.current).toBe(link);
    expect(theirs.current).toBe(link);
    await userEvent.click(link);
    expect(childClick).toHaveBeenCalledOnce();
    await waitFor(() => expect(navigate).toHaveBeenCalledOnce());
  });
});
