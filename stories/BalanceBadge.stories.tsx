import type { Meta, StoryObj } from "@storybook/react-vite";
import { expect, waitFor, within } from "storybook/test";
import { BalanceBadge } from "../src/react/index.js";
import { counter, sampleUsage } from "../src/testing/createFakeMeter.js";

const meta = {
  title: "Components/BalanceBadge",
  component: BalanceBadge,
  parameters: { meter: { usage: sampleUsage() } },
} satisfies Meta<typeof BalanceBadge>;

export default meta;
type Story = StoryObj<typeof meta>;

export const Normal: Story = {
  play: async ({ canvasElement }) => {
    const badge = within(canvasElement).getByRole("status");
    await waitFor(() => expect(badge).toHaveTextContent("12,340 tokens left"));
    await expect(badge).toHaveAttribute("data-state", "normal");
    await expect(badge.title).toContain("renews Dec 1, 2026");
  },
};

export const Loading: Story = { parameters: { meter: { pending: true } } };

export const Low: Story = { parameters: { meter: { usage: sampleUsage([counter({ used: 18_800 })]) } } };

export const Empty: Story = {
  parameters: { meter: { usage: sampleUsage([counter({ used: 20_000 })]) } },
  play: async ({ canvasElement }) => {
    await waitFor(() => expect(within(canvasElement).getByRole("status")).toHaveAttribute("data-state", "empty"));
  },
};

export const ErrorState: Story = {
  name: "Error",
  parameters: { meter: { usageError: { status: 503, code: "unavailable", message: "Database unreachable." } } },
  play: async ({ canvasElement }) => {
    await waitFor(() => expect(within(canvasElement).getByRole("status")).toHaveTextContent("Balance unavailable"));
  },
};

/** A request holds 1,500 tokens while its reply streams; the held amount shows next to the balance. */
export const HeldWhileStreaming: Story = {
  parameters: { meter: { usage: sampleUsage([counter({ used: 6_160, held: 1_500 })]) } },
};

/** The fake stream spends tokens every 400 ms, as a streaming reply would: the badge ticks down. */
export const Live: Story = {
  parameters: { meter: { usage: sampleUsage([counter({ quota: 50_000, used: 8_000 })]), tick: { every: 400, step: 137, held: 800 } } },
  play: async ({ canvasElement }) => {
    const badge = within(canvasElement).getByRole("status");
    await waitFor(() => expect(badge).toHaveTextContent("42,000 tokens left"));
    // A tick later the balance is lower and a hold shows.
    await waitFor(() => expect(badge).toHaveAttribute("data-held"), { timeout: 3000 });
    await expect(badge).not.toHaveTextContent("42,000 tokens left");
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

/** Numbers and dates follow the locale; the label text comes from `formatLabel`. */
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

export const Dark: Story = {
  parameters: { theme: "dark", meter: { usage: sampleUsage([counter({ used: 6_160, held: 1_500 })]) } },
  render: (args) => (
    <div className="story-stack">
      <BalanceBadge {...args} />
      <BalanceBadge {...args} lowThreshold={0.9} />
    </div>
  ),
};
