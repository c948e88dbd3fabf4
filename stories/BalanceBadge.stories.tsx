import type { Meta, StoryObj } from "@storybook/react-vite";
import { expect, waitFor, within } from "storybook/test";
import { BalanceBadge } from "../src/react/index.js";
import { counter, sampleUsage } from "../src/testing/createFakeMeter.js";
import { englishIn } from "./messages.js";

const meta = {
  title: "Components/BalanceBadge",
  component: BalanceBadge,
  parameters: { meter: { usage: sampleUsage() } },
} satisfies Meta<typeof BalanceBadge>;

export default meta;
type Story = StoryObj<typeof meta>;

const badge = (el: HTMLElement) => within(el).getByRole("status");
const spoken = (el: HTMLElement) => badge(el).querySelector(".mk-sr-only")!.textContent;

export const Ok: Story = {
  play: async ({ canvasElement }) => {
    await waitFor(() => expect(badge(canvasElement)).toHaveTextContent("12,340 tokens left"));
    await expect(badge(canvasElement)).toHaveAttribute("data-state", "ok");
    await expect(badge(canvasElement).title).toContain("renews Dec 1, 2026");
  },
};

/** The first answer never comes: the badge stays in its loading state (the fake's stream is held too). */
export const Loading: Story = {
  parameters: { meter: { pending: true } },
  play: async ({ canvasElement }) => {
    await new Promise((r) => setTimeout(r, 300));
    await expect(badge(canvasElement)).toHaveAttribute("data-state", "loading");
    await expect(badge(canvasElement)).toHaveTextContent("Loading balance…");
  },
};

/** Low and empty differ by an icon and by what screen readers hear, not by colour alone. */
export const Low: Story = {
  parameters: { meter: { usage: sampleUsage([counter({ used: 18_800 })]) } },
  play: async ({ canvasElement }) => {
    await waitFor(() => expect(badge(canvasElement)).toHaveAttribute("data-state", "low"));
    await expect(canvasElement.querySelector(".mk-badge-icon")).toHaveTextContent("!");
    await waitFor(() => expect(spoken(canvasElement)).toBe("1,200 tokens left. Running low"));
  },
};

export const Empty: Story = {
  parameters: { meter: { usage: sampleUsage([counter({ used: 20_000 })]) } },
  play: async ({ canvasElement }) => {
    await waitFor(() => expect(badge(canvasElement)).toHaveAttribute("data-state", "empty"));
    await expect(canvasElement.querySelector(".mk-badge-icon")).toHaveTextContent("×");
    await waitFor(() => expect(spoken(canvasElement)).toBe("0 tokens left. Used up"));
  },
};

export const ErrorState: Story = {
  name: "Error",
  parameters: { meter: { usageError: { status: 503, code: "unavailable", message: "Database unreachable." } } },
  play: async ({ canvasElement }) => {
    await waitFor(() => expect(badge(canvasElement)).toHaveTextContent("Balance unavailable"));
    await expect(badge(canvasElement)).toHaveAttribute("data-state", "error");
  },
};

/** A plan without a quota: "Unlimited", never a huge number. */
export const Unlimited: Story = {
  parameters: { meter: { usage: sampleUsage([counter({ quota: null, used: 9_007_199 })]) } },
  play: async ({ canvasElement }) => {
    await waitFor(() => expect(badge(canvasElement)).toHaveAttribute("data-state", "unlimited"));
    await expect(badge(canvasElement)).toHaveTextContent("Unlimited");
  },
};

/** A request holds 1,500 tokens while its reply streams; the held amount shows next to the balance. */
export const HeldWhileStreaming: Story = {
  parameters: { meter: { usage: sampleUsage([counter({ used: 6_160, held: 1_500 })]) } },
  play: async ({ canvasElement }) => {
    await waitFor(() => expect(badge(canvasElement)).toHaveAttribute("data-held"));
    await expect(badge(canvasElement)).toHaveTextContent("1,500 tokens held");
  },
};

/**
 * The fake stream spends tokens every 150 ms, as a streaming reply would, then stops. Screen
 * readers hear the first balance at once, not every tick, and the settled one within about a
 * second of the last tick.
 */
export const Live: Story = {
  parameters: { meter: { usage: sampleUsage([counter({ quota: 50_000, used: 8_000 })]), tick: { every: 150, step: 137, held: 800, count: 8 } } },
  play: async ({ canvasElement }) => {
    await waitFor(() => expect(spoken(canvasElement)).toMatch(/tokens left/));
    await waitFor(() => expect(badge(canvasElement)).toHaveAttribute("data-held"), { timeout: 3000 });
    // The ticks end with the hold released: 42,000 − 8 × 137.
    await waitFor(() => expect(badge(canvasElement)).toHaveTextContent("40,904 tokens left"), { timeout: 4000 });
    const settled = performance.now();
    await waitFor(() => expect(spoken(canvasElement)).toBe("40,904 tokens left"), { timeout: 2000 });
    await expect(performance.now() - settled).toBeLessThan(2000);
  },
};

export const LongNumbers: Story = {
  parameters: { meter: { usage: sampleUsage([counter({ quota: 5_000_000, granted: 120_000_000, used: 1_234_567 })]) } },
  render: (args) => (
    <div className="story-stack">
      <BalanceBadge {...args} />
      <BalanceBadge {...args} compact={false} />
    </div>
  ),
};

const locales = ["en-US", "de-DE", "fr-FR", "hi-IN", "ja-JP"];

/** Numbers and dates follow the locale; the words come from the provider's `messages`. */
export const Locales: Story = {
  parameters: { meter: { usage: sampleUsage([counter({ quota: 2_000_000, used: 765_432 })]) } },
  render: (args) => (
    <div className="story-stack">
      {locales.map((locale) => (
        <div key={locale} className="story-row">
          <span className="story-label">{locale}</span>
          <BalanceBadge {...args} locale={locale} compact={false} />
        </div>
      ))}
    </div>
  ),
};

/** A `cents` counter shows money in its currency; tokens show as a count. */
export const CentsVsTokens: Story = {
  parameters: {
    meter: {
      usage: sampleUsage([
        counter({ key: "money", label: "Credit", unit: "cents", currency: "usd", quota: 2_000, used: 766 }),
        counter({ key: "money_eur", label: "Guthaben", unit: "cents", currency: "eur", quota: 50_000, used: 1_250 }),
        counter({ key: "money_jpy", label: "Credit (JPY)", unit: "cents", currency: "jpy", quota: 5_000, used: 766 }),
        counter(),
      ]),
    },
  },
  render: (args) => (
    <div className="story-stack">
      <BalanceBadge {...args} counter="money" />
      <BalanceBadge {...args} counter="money_eur" locale="de-DE" />
      <BalanceBadge {...args} counter="money_jpy" locale="ja-JP" />
      <BalanceBadge {...args} counter="tokens" />
    </div>
  ),
  play: async ({ canvasElement }) => {
    const badges = within(canvasElement).getAllByRole("status");
    await waitFor(() => expect(badges[0]).toHaveTextContent("$12.34 left"));
    await expect(badges[1]).toHaveTextContent("487,50 € left");
    await expect(badges[2]).toHaveTextContent("￥4,234 left");
  },
};

/** `formatLabel` may return any node. */
export const CustomLabel: Story = {
  args: { formatLabel: ({ remaining }) => <strong>⚡ {remaining}</strong> },
  play: async ({ canvasElement }) => {
    await waitFor(() => expect(canvasElement.querySelector("strong")).toHaveTextContent("⚡ 12,340 tokens"));
  },
};

const allStates = [
  sampleUsage([counter({ key: "ok" }), counter({ key: "low", used: 18_800 }), counter({ key: "empty", used: 20_000 }), counter({ key: "inf", quota: null, used: 5 })]),
];
const statesRender: Story["render"] = (args) => (
  <div className="story-stack">
    {["ok", "low", "empty", "inf"].map((key) => (
      <BalanceBadge key={key} {...args} counter={key} />
    ))}
  </div>
);

export const Dark: Story = { parameters: { theme: "dark", meter: { usage: allStates[0] } }, render: statesRender };

/** German: every word translated, numbers and dates in German. */
export const German: Story = {
  parameters: { language: "de", meter: { usage: sampleUsage([counter({ used: 6_160, held: 1_500 })]) } },
  play: async ({ canvasElement }) => {
    await waitFor(() => expect(badge(canvasElement)).toHaveTextContent("noch 12.340 Tokens"));
    await expect(badge(canvasElement).title).toContain("erneuert am 01.12.2026");
    await expect(englishIn(canvasElement)).toEqual([]);
  },
};

/** Arabic, right to left: amounts stay whole inside the sentence (`<bdi>`). */
export const Arabic: Story = {
  parameters: { language: "ar", meter: { usage: allStates[0] } },
  render: statesRender,
  play: async ({ canvasElement }) => {
    await waitFor(() => expect(within(canvasElement).getAllByRole("status")[0]).toHaveAttribute("data-state", "ok"));
    await expect(canvasElement.querySelector(".mk-badge-text bdi")).not.toBeNull();
    await expect(englishIn(canvasElement)).toEqual([]);
  },
};

/**
 * Windows high contrast: the stylesheet keeps every state's icon in system colours under
 * `forced-colors: active` (screenshots emulate it; here the rule and the glyphs are checked).
 */
export const ForcedColors: Story = {
  parameters: { meter: { usage: allStates[0] } },
  render: statesRender,
  play: async ({ canvasElement }) => {
    const rules = [...document.styleSheets].flatMap((sheet) => {
      try {
        return [...sheet.cssRules];
      } catch {
        return [];
      }
    });
    const forced = rules.filter((r) => r instanceof CSSMediaRule && r.conditionText.includes("forced-colors: active")).map((r) => r.cssText);
    await expect(forced.join("\n")).toMatch(/\.mk-badge-icon[^}]*canvastext/i);
    await waitFor(() => expect([...canvasElement.querySelectorAll(".mk-badge-icon")].map((i) => i.textContent)).toEqual(["", "!", "×", "∞"]));
  },
};
