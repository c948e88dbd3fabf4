import type { Meta, StoryObj } from "@storybook/react-vite";
import { expect, fn, userEvent, waitFor, within } from "storybook/test";
import { CreditPacks } from "../src/react/index.js";
import { englishIn } from "./messages.js";
import { expectNoOverflow, narrow } from "./narrow.js";

const meta = {
  title: "Components/CreditPacks",
  component: CreditPacks,
  args: { navigate: fn() },
  decorators: [(Story) => <div style={{ width: 320 }}>{Story()}</div>],
} satisfies Meta<typeof CreditPacks>;

export default meta;
type Story = StoryObj<typeof meta>;

/** The packs on sale as buy buttons, on a pricing page or in a settings panel. */
export const Ready: Story = {
  play: async ({ canvasElement, args }) => {
    const list = await within(canvasElement).findByRole("list", { name: "Credit packs" });
    await userEvent.click(within(list).getByRole("button", { name: /Pro/ }));
    await waitFor(() => expect(args.navigate).toHaveBeenCalledWith("https://checkout.example/session/pack_large"));
  },
};

export const Loading: Story = {
  parameters: { meter: { packsPending: true } },
  play: async ({ canvasElement }) => {
    await expect(within(canvasElement).getByText("Loading packs…")).toBeVisible();
    await expect(canvasElement.querySelector(".mk-packs")).toHaveAttribute("aria-busy", "true");
  },
};

export const Empty: Story = {
  parameters: { meter: { packs: [] } },
  play: async ({ canvasElement }) => {
    await expect(await within(canvasElement).findByText("No credit packs are available right now.")).toBeVisible();
  },
};

/** A failed load is an alert with a retry button; the retry works (keyboard). */
export const ErrorState: Story = {
  name: "Error",
  parameters: { meter: { packsError: { status: 503, code: "unavailable", message: "down" } } },
  play: async ({ canvasElement }) => {
    const alert = await within(canvasElement).findByRole("alert");
    await expect(alert).toHaveTextContent("Packs could not be loaded.");
    const retry = within(alert).getByRole("button", { name: "Try again" });
    retry.focus();
    await userEvent.keyboard("{Enter}");
    // The fake keeps failing: the alert comes back, the retry stays reachable.
    await expect(await within(canvasElement).findByRole("alert")).toBeVisible();
  },
};

export const Dark: Story = { parameters: { theme: "dark" } };

export const German: Story = {
  parameters: { language: "de" },
  play: async ({ canvasElement }) => {
    const list = await within(canvasElement).findByRole("list", { name: "Guthabenpakete" });
    await expect(within(list).getAllByRole("button")[0]).toHaveTextContent("Starter · 100.000 Tokens · 5,00 $");
    await expect(englishIn(canvasElement)).toEqual([]);
  },
};

export const Arabic: Story = {
  parameters: { language: "ar", meter: { packsError: { status: 503, code: "unavailable", message: "down" } } },
  play: async ({ canvasElement }) => {
    await expect(await within(canvasElement).findByRole("alert")).toHaveTextContent("تعذّر تحميل الباقات.");
    await expect(englishIn(canvasElement)).toEqual([]);
  },
};

/** 340 px wide, in German: each pack's label, amount and price wrap inside its button. */
export const Narrow: Story = {
  decorators: [narrow],
  parameters: { language: "de" },
  play: async ({ canvasElement }) => {
    await waitFor(() => expect(canvasElement.querySelector(".mk-packs")).toHaveAttribute("data-state", "ready"));
    await expectNoOverflow(canvasElement);
  },
};
