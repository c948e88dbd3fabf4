import type { Decorator, Meta, StoryObj } from "@storybook/react-vite";
import { QueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { expect, fn, userEvent, waitFor, within } from "storybook/test";
import { AutoTopUpStatus, MeterProvider } from "../src/react/index.js";
import { autoTopUpCounter, createFakeAutoTopUp, type FakeAutoTopUpOptions } from "../src/testing/createFakeAutoTopUp.js";

declare module "@storybook/react-vite" {
  interface Parameters {
    /** The auto top-up routes' answers for this story. */
    autoTopUp?: FakeAutoTopUpOptions;
  }
}

/** A provider over the fake auto top-up routes, fresh per story. */
const withAutoTopUp: Decorator = (Story, { parameters }) => {
  const [setup] = useState(() => ({
    fake: createFakeAutoTopUp(parameters.autoTopUp ?? {}),
    client: new QueryClient({ defaultOptions: { queries: { retry: false } } }),
  }));
  return (
    <MeterProvider baseUrl="/api/meter" fetch={setup.fake.fetch} queryClient={setup.client} live={false} locale="en-US">
      <Story />
    </MeterProvider>
  );
};

const meta = {
  title: "Components/AutoTopUpStatus",
  component: AutoTopUpStatus,
  decorators: [withAutoTopUp],
  args: { navigate: fn() },
} satisfies Meta<typeof AutoTopUpStatus>;

export default meta;
type Story = StoryObj<typeof meta>;

/** Never set up, or turned off. */
export const Off: Story = {
  parameters: { autoTopUp: { counters: [] } },
  play: async ({ canvasElement }) => {
    const status = await within(canvasElement).findByText("Auto top-up is off.");
    await expect(status.closest("[data-state]")).toHaveAttribute("data-state", "off");
  },
};

/** On: buys the pack when `remaining` drops below the threshold. */
export const Active: Story = {
  parameters: { autoTopUp: { counters: [autoTopUpCounter()] } },
  play: async ({ canvasElement }) => {
    await within(canvasElement).findByText(/Auto top-up is on/);
  },
};

/** A charge is under way. */
export const ToppingUp: Story = {
  parameters: { autoTopUp: { counters: [autoTopUpCounter({ inFlight: true })] } },
  play: async ({ canvasElement }) => {
    await within(canvasElement).findByText(/Topping up/);
  },
};

/** The card was declined: paused, no retry, until the user saves another card. */
export const PausedDeclined: Story = {
  parameters: { autoTopUp: { counters: [autoTopUpCounter({ status: "paused", pausedReason: "card_declined", pausedMessage: "Your card was declined." })] } },
  play: async ({ canvasElement, args }) => {
    const canvas = within(canvasElement);
    await canvas.findByText(/Your card was declined/);
    await userEvent.click(canvas.getByRole("button", { name: "Update card" }));
    await waitFor(() => expect(args.navigate).toHaveBeenCalledWith("https://checkout.example/setup"));
  },
};

/** The bank asked for 3-D Secure, which an off-session charge cannot do. */
export const PausedNeedsAuthentication: Story = {
  parameters: { autoTopUp: { counters: [autoTopUpCounter({ status: "paused", pausedReason: "requires_action", pausedMessage: null })] } },
  play: async ({ canvasElement }) => {
    await within(canvasElement).findByText(/3-D Secure/);
  },
};

/** On, but no card saved yet: the button saves one. */
export const NoCard: Story = {
  parameters: { autoTopUp: { paymentMethodSaved: false, counters: [autoTopUpCounter()] } },
  play: async ({ canvasElement }) => {
    await within(canvasElement).findByRole("button", { name: "Save a card" });
  },
};
