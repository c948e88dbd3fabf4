import type { Meta, StoryObj } from "@storybook/react-vite";
import { expect, userEvent, waitFor, within } from "storybook/test";
import { UsageHistory } from "../src/react/index.js";
import { sampleEntries } from "../src/testing/createFakeMeter.js";
import { englishIn } from "./messages.js";
import { expectNoOverflow, narrow } from "./narrow.js";

const meta = {
  title: "Components/UsageHistory",
  component: UsageHistory,
  args: { days: 14, pageSize: 8 },
  decorators: [(Story) => <div style={{ width: 640 }}>{Story()}</div>],
} satisfies Meta<typeof UsageHistory>;

export default meta;
type Story = StoryObj<typeof meta>;

/** Tokens per day and the newest ledger entries; a commit's returned part is its own row. */
export const Ready: Story = {
  play: async ({ canvasElement }) => {
    const chart = await within(canvasElement).findByRole("img", { name: "Tokens per day (UTC), last 14 days" });
    await expect(chart.querySelectorAll("rect")).toHaveLength(14);
    await waitFor(() => expect(canvasElement.querySelector('tr[data-kind="refund"]')).toHaveTextContent("returned"));
  },
};

/** "Show older entries" pages back with the keyboard until the first entry. */
export const Paging: Story = {
  parameters: { meter: { entries: sampleEntries(12) } },
  play: async ({ canvasElement }) => {
    const more = await within(canvasElement).findByRole("button", { name: "Show older entries" });
    more.focus();
    await userEvent.keyboard("{Enter}");
    await waitFor(() => expect(canvasElement.querySelector('tr[data-kind="grant"]')).not.toBeNull());
    await expect(within(canvasElement).queryByRole("button", { name: "Show older entries" })).toBeNull();
  },
};

export const Empty: Story = {
  parameters: { meter: { entries: [], history: Array.from({ length: 14 }, (_, i) => ({ date: `2026-11-${String(14 + i).padStart(2, "0")}`, counters: { tokens: 0 } })) } },
  play: async ({ canvasElement }) => {
    await expect(await within(canvasElement).findByText("No entries yet.")).toBeVisible();
    await expect(await within(canvasElement).findByText("No usage in this period.")).toBeVisible();
  },
};

export const Loading: Story = {
  parameters: { meter: { historyPending: true } },
  play: async ({ canvasElement }) => {
    await new Promise((r) => setTimeout(r, 300));
    await expect(canvasElement.querySelector(".mk-history")).toHaveAttribute("data-state", "loading");
    await expect(within(canvasElement).getByText("Loading history…")).toBeVisible();
  },
};

export const ErrorState: Story = {
  name: "Error",
  parameters: { meter: { historyError: { status: 503, code: "unavailable", message: "down" } } },
  play: async ({ canvasElement }) => {
    const alert = await within(canvasElement).findByRole("alert");
    await expect(alert).toHaveTextContent("The history could not be loaded.");
    await expect(within(alert).getByRole("button", { name: "Try again" })).toBeVisible();
  },
};

export const Dark: Story = { parameters: { theme: "dark" } };

export const German: Story = {
  parameters: { language: "de" },
  play: async ({ canvasElement }) => {
    await within(canvasElement).findByRole("img", { name: "Tokens pro Tag (UTC), letzte 14 Tage" });
    await waitFor(() => expect(canvasElement.querySelector("tbody tr")).not.toBeNull());
    await expect(englishIn(canvasElement)).toEqual([]);
  },
};

export const Arabic: Story = {
  parameters: { language: "ar" },
  play: async ({ canvasElement }) => {
    await within(canvasElement).findByRole("img");
    await waitFor(() => expect(canvasElement.querySelector("tbody tr")).not.toBeNull());
    await expect(englishIn(canvasElement)).toEqual([]);
  },
};

/** 340 px wide, in German (long words): the chart scales, the table fits. */
export const Narrow: Story = {
  decorators: [narrow],
  parameters: { language: "de" },
  play: async ({ canvasElement }) => {
    await waitFor(() => expect(canvasElement.querySelectorAll("tbody tr").length).toBeGreaterThan(0));
    await expectNoOverflow(canvasElement);
  },
};
