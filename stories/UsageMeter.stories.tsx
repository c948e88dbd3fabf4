import type { Meta, StoryObj } from "@storybook/react-vite";
import { expect, waitFor, within } from "storybook/test";
import { UsageMeter } from "../src/react/index.js";
import { counter, sampleUsage } from "../src/testing/createFakeMeter.js";
import { englishIn } from "./messages.js";
import { expectNoOverflow, narrow } from "./narrow.js";

const meta = {
  title: "Components/UsageMeter",
  component: UsageMeter,
  parameters: { meter: { usage: sampleUsage([counter({ used: 6_160, held: 1_500, granted: 5_000 })]) } },
  decorators: [(Story) => <div style={{ width: 520 }}>{Story()}</div>],
} satisfies Meta<typeof UsageMeter>;

export default meta;
type Story = StoryObj<typeof meta>;

const root = (el: HTMLElement) => el.querySelector(".mk-meter")!;

export const Ok: Story = {
  play: async ({ canvasElement }) => {
    const meter = await within(canvasElement).findByRole("meter", { name: "Tokens used" });
    await expect(meter).toHaveAttribute("aria-valuetext", "6,160 tokens used, 1,500 tokens held, 17,340 tokens left of 25,000 tokens");
    await expect(root(canvasElement)).toHaveTextContent("Renews Dec 1, 2026");
  },
};

export const Low: Story = {
  parameters: { meter: { usage: sampleUsage([counter({ used: 18_800 })]) } },
  play: async ({ canvasElement }) => waitFor(() => expect(root(canvasElement)).toHaveAttribute("data-state", "low")),
};

export const Empty: Story = {
  parameters: { meter: { usage: sampleUsage([counter({ used: 20_000 })]) } },
  play: async ({ canvasElement }) => waitFor(() => expect(root(canvasElement)).toHaveAttribute("data-state", "empty")),
};

export const Unlimited: Story = {
  parameters: { meter: { usage: sampleUsage([counter({ quota: null, used: 1_234_567 })]) } },
  play: async ({ canvasElement }) => {
    await waitFor(() => expect(root(canvasElement)).toHaveAttribute("data-state", "unlimited"));
    await expect(root(canvasElement)).toHaveTextContent("Unlimited");
  },
};

/** The fake stream spends and holds as a streaming reply would: the bar moves. */
export const Live: Story = {
  parameters: { meter: { usage: sampleUsage([counter({ quota: 50_000, used: 8_000 })]), tick: { every: 400, step: 437, held: 1_200 } } },
};

export const Loading: Story = {
  parameters: { meter: { pending: true } },
  play: async ({ canvasElement }) => {
    await new Promise((r) => setTimeout(r, 300));
    await expect(root(canvasElement)).toHaveAttribute("data-state", "loading");
    await expect(root(canvasElement)).toHaveAttribute("aria-busy", "true");
  },
};

export const ErrorState: Story = {
  name: "Error",
  parameters: { meter: { usageError: { status: 503, code: "unavailable", message: "down" } } },
  play: async ({ canvasElement }) => {
    const alert = await within(canvasElement).findByRole("alert");
    await expect(within(alert).getByRole("button", { name: "Try again" })).toBeVisible();
  },
};

export const Dark: Story = { parameters: { theme: "dark" } };

export const German: Story = {
  parameters: { language: "de" },
  play: async ({ canvasElement }) => {
    await within(canvasElement).findByRole("meter", { name: "Tokens verbraucht" });
    await expect(root(canvasElement)).toHaveTextContent("Erneuert am 01.12.2026");
    await expect(englishIn(canvasElement)).toEqual([]);
  },
};

export const Arabic: Story = {
  parameters: { language: "ar" },
  play: async ({ canvasElement }) => {
    await within(canvasElement).findByRole("meter");
    await expect(englishIn(canvasElement)).toEqual([]);
  },
};

/** 340 px wide, in German: the legend wraps. */
export const Narrow: Story = {
  decorators: [narrow],
  parameters: { language: "de", meter: { usage: sampleUsage([counter({ used: 6_160, held: 1_500, granted: 200_000 })]) } },
  play: async ({ canvasElement }) => {
    await waitFor(() => expect(canvasElement.querySelector(".mk-meter")).toHaveAttribute("data-state", "ok"));
    await expectNoOverflow(canvasElement);
  },
};
