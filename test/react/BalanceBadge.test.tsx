import { act, screen, waitFor } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { BalanceBadge, formatAmount } from "../../src/react/index.js";
import { counter, sampleUsage } from "../../src/testing/index.js";
import { renderWithMeter } from "./render.js";

describe("BalanceBadge", () => {
  it("shows the balance as a polite status with used, held, quota and renewal in its title", async () => {
    renderWithMeter(<BalanceBadge className="mine" />, { usage: sampleUsage([counter({ used: 6_160, held: 1_500 })]) });
    const badge = screen.getByRole("status");
    expect(badge).toHaveAttribute("data-state", "loading");
    expect(badge).toHaveTextContent("Loading balance…");
    await waitFor(() => expect(badge).toHaveTextContent("12,340 tokens left"));
    expect(badge).toHaveAttribute("aria-live", "polite");
    expect(badge).toHaveClass("mk-badge", "mine");
    expect(badge).toHaveAttribute("data-state", "ok");
    expect(badge).toHaveAttribute("data-held");
    expect(badge).toHaveTextContent("1,500 tokens held");
    expect(badge.title).toBe("Tokens: 6,160 tokens used of 20,000 tokens · 1,500 tokens held · renews Dec 1, 2026");
  });

  it("updates when a stream event arrives", async () => {
    const { meter } = renderWithMeter(<BalanceBadge />);
    const badge = screen.getByRole("status");
    await waitFor(() => expect(badge).toHaveTextContent("12,340 tokens left"));
    act(() => meter.push(sampleUsage([counter({ used: 10_000, held: 2_000 })], 2)));
    await waitFor(() => expect(badge).toHaveTextContent("8,000 tokens left"));
    expect(badge).toHaveTextContent("2,000 tokens held");
  });

  it("announces the first balance at once, then only once the balance settles, not on every tick", async () => {
    const { meter, container } = renderWithMeter(<BalanceBadge announceDelay={1000} />);
    const live = () => container.querySelector(".mk-sr-only")!.textContent;
    await waitFor(() => expect(screen.getByRole("status")).toHaveTextContent("12,340 tokens left"));
    // No "Loading balance…" left behind once the number is there: the first balance is announced
    // in the effects of the render that shows it (the DOM observer that wakes waitFor may run
    // between the two), well before announceDelay.
    await waitFor(() => expect(live()).toBe("12,340 tokens left"), { timeout: 500 });
    for (let i = 2; i <= 5; i++) {
      act(() => meter.push(sampleUsage([counter({ used: 7_660 + i * 100 })], i)));
      await new Promise((r) => setTimeout(r, 50));
    }
    // Visible text follows every tick; the announced text still holds the settled value.
    expect(screen.getByRole("status")).toHaveTextContent("11,840 tokens left");
    expect(live()).toBe("12,340 tokens left");
    await waitFor(() => expect(live()).toBe("11,840 tokens left"), { timeout: 3000 });
  });

  it.each([
    ["low", counter({ used: 18_500 }), "1,500 tokens left", "!", "Running low"],
    ["empty", counter({ used: 20_000 }), "0 tokens left", "×", "Used up"],
  ])("shows the %s state with an icon and says it, not by colour alone", async (state, c, text, icon, said) => {
    const { container } = renderWithMeter(<BalanceBadge />, { usage: sampleUsage([c]) });
    await waitFor(() => expect(screen.getByRole("status")).toHaveAttribute("data-state", state));
    expect(screen.getByRole("status")).toHaveTextContent(text);
    expect(container.querySelector(".mk-badge-icon")).toHaveTextContent(icon);
    expect(container.querySelector(".mk-sr-only")).toHaveTextContent(`${text}. ${said}`);
  });

  it("shows an unlimited counter as Unlimited", async () => {
    renderWithMeter(<BalanceBadge />, { usage: sampleUsage([counter({ quota: null, used: 9_000_000 })]) });
    await waitFor(() => expect(screen.getByRole("status")).toHaveAttribute("data-state", "unlimited"));
    expect(screen.getByRole("status")).toHaveTextContent("Unlimited");
    expect(screen.getByRole("status")).not.toHaveTextContent(/left/);
    expect(screen.getByRole("status").title).toBe("Tokens: 9,000,000 tokens used of Unlimited · renews Dec 1, 2026");
  });

  it("forwards its ref, merges style, and takes a node from formatLabel", async () => {
    const ref = { current: null as HTMLSpanElement | null };
    renderWithMeter(<BalanceBadge ref={ref} style={{ color: "red" }} formatLabel={({ remaining }) => <strong>{remaining}</strong>} />);
    const badge = screen.getByRole("status");
    expect(ref.current).toBe(badge);
    expect(badge.style.color).toBe("red");
    await waitFor(() => expect(badge.querySelector("strong")).toHaveTextContent("12,340 tokens"));
  });

  it("speaks the provider's language: messages, plural unit names, <bdi> around amounts", async () => {
    const { container } = renderWithMeter(<BalanceBadge />, {
      usage: sampleUsage([counter({ quota: 1, used: 0 })]),
      provider: { locale: "de-DE", messages: { badgeLabel: "noch {remaining}", units: { tokens: { one: "Token", other: "Tokens" } } } },
    });
    await waitFor(() => expect(screen.getByRole("status")).toHaveTextContent("noch 1 Token"));
    expect(container.querySelector(".mk-badge-text bdi")).toHaveTextContent("1 Token");
  });

  it("shows the error state when the balance cannot be loaded", async () => {
    renderWithMeter(<BalanceBadge />, { usageError: { status: 503, code: "unavailable", message: "down" }, provider: { messages: { badgeError: "No balance" } } });
    await waitFor(() => expect(screen.getByRole("status")).toHaveAttribute("data-state", "error"));
    expect(screen.getByRole("status")).toHaveTextContent("No balance");
  });

  it("shows cents as money, large numbers compactly, and follows the locale", async () => {
    renderWithMeter(
      <>
        <BalanceBadge counter="money" />
        <BalanceBadge counter="big" />
        <BalanceBadge counter="big" locale="de-DE" compact={false} />
      </>,
      {
        usage: sampleUsage([
          counter({ key: "money", label: "Credit", unit: "cents", currency: "usd", quota: 2_000, used: 766 }),
          counter({ key: "big", quota: 5_000_000, used: 1_234_567 }),
        ]),
      },
    );
    const [money, big, de] = screen.getAllByRole("status");
    await waitFor(() => expect(money).toHaveTextContent("$12.34 left"));
    expect(big).toHaveTextContent("3.8M tokens left");
    expect(de).toHaveTextContent("3.765.433 tokens left");
  });
});

describe("formatAmount", () => {
  it("uses the currency's own minor unit", () => {
    expect(formatAmount(1234, "cents", { locale: "en-US", currency: "usd" })).toBe("$12.34");
    expect(formatAmount(1234, "cents", { locale: "en-US", currency: "jpy" })).toBe("¥1,234");
    expect(formatAmount(1, "tokens", { locale: "en-US" })).toBe("1 token");
    expect(formatAmount(250_000, "credits", { locale: "en-US" })).toBe("250K credits");
    expect(formatAmount(2, "tokens", { locale: "en-US" })).toBe("2 tokens");
    // Arabic has six plural categories; each gets its own name.
    const units = { tokens: { zero: "z", one: "o", two: "t", few: "f", many: "m", other: "x" } };
    expect([0, 1, 2, 3, 11, 100].map((n) => formatAmount(n, "tokens", { locale: "ar", units, compact: false }).split(" ")[1])).toEqual(["z", "o", "t", "f", "m", "x"]);
  });
});
