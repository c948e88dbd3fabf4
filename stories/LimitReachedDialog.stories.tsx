import type { Meta, StoryObj } from "@storybook/react-vite";
import { useState } from "react";
import { expect, fn, userEvent, waitFor, within, screen } from "storybook/test";
import { BalanceBadge, LimitReachedDialog, useLimitReached, useMeteredFetch } from "../src/react/index.js";
import { counter, sampleUsage } from "../src/testing/createFakeMeter.js";
import { englishIn } from "./messages.js";

const emptyUsage = sampleUsage([counter({ used: 19_900 })]);
const limit = { counter: "tokens", remaining: 100, required: 1_500 };

const meta = {
  title: "Components/LimitReachedDialog",
  component: LimitReachedDialog,
  args: { navigate: fn() },
  parameters: { meter: { usage: emptyUsage, limitReached: limit } },
} satisfies Meta<typeof LimitReachedDialog>;

export default meta;
type Story = StoryObj<typeof meta>;

/** A chat box whose metered request answers 402: the dialog opens by itself. */
function ChatBox() {
  const meteredFetch = useMeteredFetch();
  return (
    <div className="story-row">
      <BalanceBadge />
      <button type="button" className="mk-dialog-close" onClick={() => void meteredFetch("/api/chat", { method: "POST" })}>
        Send message
      </button>
    </div>
  );
}

/**
 * Keyboard and screen reader, in Chromium: the 402 opens a labelled, described modal; focus goes
 * to "Not now" (the documented rule), Tab cycles inside, Escape closes and focus returns.
 */
export const OpensOnLimitReached: Story = {
  render: (args) => (
    <>
      <ChatBox />
      <LimitReachedDialog {...args} />
    </>
  ),
  play: async ({ canvasElement, args }) => {
    const trigger = within(canvasElement).getByRole("button", { name: "Send message" });
    await userEvent.click(trigger);
    const dialog = await screen.findByRole("dialog", { name: "Tokens limit reached" });
    await expect(dialog).toHaveAccessibleDescription(/needs 1,500 tokens; you have 100 tokens left/);
    await expect(dialog).toHaveAttribute("data-state", "open");
    await expect(within(dialog).getByRole("button", { name: "Not now" })).toHaveFocus();
    // Tab from the last element wraps to the first pack; Shift+Tab wraps back.
    const buy = await within(dialog).findByRole("button", { name: /Starter/ });
    await userEvent.tab();
    await expect(buy).toHaveFocus();
    await userEvent.tab({ shift: true });
    await expect(within(dialog).getByRole("button", { name: "Not now" })).toHaveFocus();
    // The rest of the page is inert while the modal is open.
    await expect(dialog.matches(":modal")).toBe(true);
    await userEvent.click(buy);
    await waitFor(() => expect(args.navigate).toHaveBeenCalledWith("https://checkout.example/session/pack_small"));
    await userEvent.keyboard("{Escape}");
    await waitFor(() => expect(screen.queryByRole("dialog")).toBeNull());
    await expect(trigger).toHaveFocus();
  },
};

/** The static limit-reached state: the provider's store already holds a 402. */
export const LimitReached: Story = {
  parameters: { meter: { usage: emptyUsage, limitOpen: limit } },
  play: async () => {
    const dialog = await screen.findByRole("dialog", { name: "Tokens limit reached" });
    await waitFor(() => expect(dialog).toBeVisible());
  },
};

/** Opened by hand while credit remains: it offers packs instead of announcing a limit. */
export const BuyMore: Story = { args: { defaultOpen: true }, parameters: { meter: { usage: sampleUsage() } } };

export const PacksLoading: Story = {
  args: { defaultOpen: true },
  parameters: { meter: { usage: emptyUsage, packsPending: true } },
  play: async () => {
    await waitFor(() => expect(screen.getByText("Loading packs…")).toBeVisible());
    // Focus does not wait for the packs: same element either way.
    await expect(screen.getByRole("button", { name: "Not now" })).toHaveFocus();
  },
};

export const PacksError: Story = {
  args: { defaultOpen: true },
  parameters: { meter: { usage: emptyUsage, packsError: { status: 503, code: "unavailable", message: "down" } } },
  play: async () => {
    const alert = await screen.findByRole("alert");
    await expect(alert).toHaveTextContent("Packs could not be loaded.");
    // Visible once the opening animation (from opacity 0) is done.
    await waitFor(() => expect(within(alert).getByRole("button", { name: "Try again" })).toBeVisible());
  },
};

export const OpenWithoutPacks: Story = {
  args: { defaultOpen: true },
  parameters: { meter: { usage: emptyUsage, packs: [] } },
  play: async () => {
    await waitFor(() => expect(screen.getByText("No credit packs are available right now.")).toBeVisible());
  },
};

/** Closing runs the exit animation: the dialog stays mounted with `data-state="closed"` until it ends. */
export const ClosingAnimation: Story = {
  // A slow animation, so the test sees the closing state.
  args: { defaultOpen: true, style: { animationDuration: "1.5s" } },
  play: async () => {
    const dialog = await screen.findByRole("dialog");
    await userEvent.click(within(dialog).getByRole("button", { name: "Not now" }));
    await expect(dialog).toHaveAttribute("data-state", "closed");
    await expect(dialog.isConnected).toBe(true);
    await waitFor(() => expect(dialog.isConnected).toBe(false), { timeout: 4000 });
  },
};

/** On a 340 px wide screen. */
export const Narrow: Story = {
  args: { defaultOpen: true, style: { width: "calc(340px - 2rem)" } },
  play: async () => {
    const dialog = await screen.findByRole("dialog");
    await within(dialog).findByRole("button", { name: /Pro/ });
    await expect(dialog.getBoundingClientRect().width).toBeLessThanOrEqual(340);
    for (const b of within(dialog).getAllByRole("button")) await expect(b.scrollWidth).toBeLessThanOrEqual(b.clientWidth + 1);
  },
};

/** Controlled: the app owns `open`; 402 answers reach it through `onOpenChange`. */
export const Controlled: Story = {
  render: function Render(args) {
    const [open, setOpen] = useState(false);
    const openFromStore = useLimitReached((s) => s.open);
    return (
      <div className="story-row">
        <button type="button" className="mk-dialog-close" onClick={() => setOpen(true)}>
          Open dialog
        </button>
        <button type="button" className="mk-dialog-close" onClick={() => openFromStore({ counter: "tokens", remaining: 0, required: 800 })}>
          Simulate 402
        </button>
        <LimitReachedDialog {...args} open={open} onOpenChange={setOpen} />
      </div>
    );
  },
  play: async ({ canvasElement }) => {
    const canvas = within(canvasElement);
    await userEvent.click(canvas.getByRole("button", { name: "Simulate 402" }));
    const dialog = await screen.findByRole("dialog");
    await userEvent.click(within(dialog).getByRole("button", { name: "Not now" }));
    await waitFor(() => expect(screen.queryByRole("dialog")).toBeNull());
  },
};

export const Dark: Story = { args: { defaultOpen: true }, parameters: { theme: "dark" } };

export const German: Story = {
  parameters: { language: "de", meter: { usage: emptyUsage, limitOpen: limit } },
  play: async ({ canvasElement }) => {
    const dialog = await screen.findByRole("dialog", { name: "Tokens: Limit erreicht" });
    await within(dialog).findByRole("list", { name: "Guthabenpakete" });
    await expect(dialog).toHaveAccessibleDescription(/Benötigt werden 1\.500 Tokens; du hast noch 100 Tokens\./);
    await expect(englishIn(canvasElement)).toEqual([]);
  },
};

export const Arabic: Story = {
  parameters: { language: "ar", meter: { usage: emptyUsage, limitOpen: limit } },
  play: async ({ canvasElement }) => {
    const dialog = await screen.findByRole("dialog");
    await within(dialog).findByRole("list", { name: "باقات الرصيد" });
    await expect(within(dialog).getByRole("button", { name: "ليس الآن" })).toHaveFocus();
    await expect(englishIn(canvasElement)).toEqual([]);
  },
};
