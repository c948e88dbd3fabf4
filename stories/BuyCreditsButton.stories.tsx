import type { Meta, StoryObj } from "@storybook/react-vite";
import { expect, fn, userEvent, waitFor, within } from "storybook/test";
import { BuyCreditsButton } from "../src/react/index.js";

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

export const Pending: Story = {
  parameters: { meter: { checkoutDelay: Infinity } },
  play: async ({ canvasElement }) => {
    const button = within(canvasElement).getByRole("button", { name: "Buy credits" });
    await userEvent.click(button);
    await waitFor(() => expect(button).toHaveAttribute("data-state", "pending"));
    await expect(button).toHaveAttribute("aria-busy", "true");
  },
};

export const ErrorState: Story = {
  name: "Error",
  parameters: { meter: { checkoutError: { status: 503, code: "unavailable", message: "Payments are unavailable right now." } } },
  play: async ({ canvasElement, args }) => {
    const canvas = within(canvasElement);
    await userEvent.click(canvas.getByRole("button", { name: "Buy credits" }));
    await expect(await canvas.findByRole("alert")).toHaveTextContent("Payments are unavailable right now.");
    await expect(args.navigate).not.toHaveBeenCalled();
  },
};

/** `asChild` lends the behaviour to your own element, here a link styled by the app. */
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
    await userEvent.click(within(canvasElement).getByRole("link", { name: /Top up/ }));
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
