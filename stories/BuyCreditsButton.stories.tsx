import type { Meta, StoryObj } from "@storybook/react-vite";
import { expect, fn, userEvent, waitFor, within } from "storybook/test";
import { BuyCreditsButton } from "../src/react/index.js";
import { englishIn } from "./messages.js";

const meta = {
  title: "Components/BuyCreditsButton",
  component: BuyCreditsButton,
  args: { packId: "pack_small", navigate: fn() },
} satisfies Meta<typeof BuyCreditsButton>;

export default meta;
type Story = StoryObj<typeof meta>;

/** Clicking posts `/checkout` and goes to the URL it returns (here `navigate` records it). */
export const Default: Story = {
  play: async ({ canvasElement, args }) => {
    await userEvent.click(within(canvasElement).getByRole("button", { name: "Buy credits" }));
    await waitFor(() => expect(args.navigate).toHaveBeenCalledWith("https://checkout.example/session/pack_small"));
  },
};

/** Keyboard only: Tab reaches it, Enter buys. */
export const Keyboard: Story = {
  play: async ({ canvasElement, args }) => {
    await userEvent.tab();
    await expect(within(canvasElement).getByRole("button", { name: "Buy credits" })).toHaveFocus();
    await userEvent.keyboard("{Enter}");
    await waitFor(() => expect(args.navigate).toHaveBeenCalledOnce());
  },
};

/** While the session is created: a spinner (named "Opening checkout…"), aria-busy, a progress cursor. */
export const Pending: Story = {
  parameters: { meter: { checkoutDelay: Infinity } },
  play: async ({ canvasElement }) => {
    const button = within(canvasElement).getByRole("button", { name: "Buy credits" });
    await userEvent.click(button);
    await waitFor(() => expect(button).toHaveAttribute("data-state", "pending"));
    await expect(button).toHaveAttribute("aria-busy", "true");
    await expect(within(button).getByRole("img", { name: "Opening checkout…" })).toBeVisible();
    await expect(getComputedStyle(button).cursor).toBe("progress");
  },
};

export const ErrorState: Story = {
  name: "Error",
  parameters: { meter: { checkoutError: { status: 503, code: "unavailable", message: "Payments are unavailable right now." } } },
  play: async ({ canvasElement, args }) => {
    const canvas = within(canvasElement);
    await userEvent.click(canvas.getByRole("button", { name: "Buy credits" }));
    await expect(await canvas.findByRole("alert")).toHaveTextContent("Payments are unavailable right now.");
    await expect(canvas.getByRole("button")).toHaveAccessibleDescription("Payments are unavailable right now.");
    await expect(args.navigate).not.toHaveBeenCalled();
  },
};

/** `asChild` lends the behaviour to your own element, here a link styled by the app: none of the kit's classes reach it. */
export const AsChild: Story = {
  args: {
    asChild: true,
    children: (
      <a href="#buy" className="story-link">
        Top up 100,000 tokens for $5
      </a>
    ),
  },
  play: async ({ canvasElement, args }) => {
    const link = within(canvasElement).getByRole("link", { name: /Top up/ });
    await expect(link).not.toHaveClass("mk-buy");
    // The link keeps its own colour on the page's background: visible.
    await expect(getComputedStyle(link).backgroundColor).toBe("rgba(0, 0, 0, 0)");
    await userEvent.click(link);
    await waitFor(() => expect(args.navigate).toHaveBeenCalledOnce());
  },
};

/** A consumer `onClick` that calls `preventDefault()` cancels the purchase. */
export const Cancelled: Story = {
  args: { onClick: (e) => e.preventDefault(), children: "Buy (disabled by the app)" },
  play: async ({ canvasElement, args }) => {
    await userEvent.click(within(canvasElement).getByRole("button"));
    await new Promise((r) => setTimeout(r, 50));
    await expect(args.navigate).not.toHaveBeenCalled();
  },
};

export const Dark: Story = { parameters: { theme: "dark" } };

export const German: Story = {
  parameters: { language: "de", meter: { checkoutDelay: Infinity } },
  play: async ({ canvasElement }) => {
    const button = within(canvasElement).getByRole("button", { name: "Guthaben kaufen" });
    await userEvent.click(button);
    await expect(await within(button).findByRole("img", { name: "Kasse wird geöffnet …" })).toBeVisible();
    await expect(englishIn(canvasElement)).toEqual([]);
  },
};

export const Arabic: Story = {
  parameters: { language: "ar" },
  play: async ({ canvasElement }) => {
    await expect(within(canvasElement).getByRole("button", { name: "شراء رصيد" })).toBeVisible();
    await expect(englishIn(canvasElement)).toEqual([]);
  },
};
