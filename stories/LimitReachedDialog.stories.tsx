import type { Meta, StoryObj } from "@storybook/react-vite";
import { useState } from "react";
import { expect, fn, userEvent, waitFor, within, screen } from "storybook/test";
import { BalanceBadge, LimitReachedDialog, useLimitReached, useMeteredFetch } from "../src/react/index.js";
import { counter, sampleUsage } from "../src/testing/createFakeMeter.js";

const emptyUsage = sampleUsage([counter({ used: 19_900 })]);

const meta = {
  title: "Components/LimitReachedDialog",
  component: LimitReachedDialog,
  args: { navigate: fn() },
  parameters: { meter: { usage: emptyUsage, limitReached: { counter: "tokens", remaining: 100, required: 1_500 } } },
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
    const buy = await within(dialog).findByRole("button", { name: /Starter/ });
    await userEvent.click(buy);
    await waitFor(() => expect(args.navigate).toHaveBeenCalledWith("https://checkout.example/session/pack_small"));
    // Escape closes and gives focus back to the button that caused it.
    await userEvent.keyboard("{Escape}");
    await waitFor(() => expect(screen.queryByRole("dialog")).toBeNull());
    await expect(trigger).toHaveFocus();
  },
};

export const OpenWithPacks: Story = { args: { defaultOpen: true } };

export const OpenWithoutPacks: Story = {
  args: { defaultOpen: true },
  parameters: { meter: { usage: emptyUsage, packs: [] } },
  play: async () => {
    await expect(await screen.findByText("No credit packs are available right now.")).toBeVisible();
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
