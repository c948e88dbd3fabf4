import type { Decorator, Meta, StoryObj } from "@storybook/react-vite";
import { QueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { expect, fn, userEvent, waitFor, within } from "storybook/test";
import { AutoTopUpStatus, MeterProvider } from "../src/react/index.js";
import { autoTopUpCounter, createFakeAutoTopUp, type FakeAutoTopUpOptions } from "../src/testing/createFakeAutoTopUp.js";
import { englishIn } from "./messages.js";
import { expectNoOverflow, narrow } from "./narrow.js";
import { LANGUAGES } from "./withMeter.js";

declare module "@storybook/react-vite" {
  interface Parameters {
    /** The auto top-up routes' answers for this story. */
    autoTopUp?: FakeAutoTopUpOptions;
    /** `GET /auto-top-up` answers 503. */
    autoTopUpFails?: boolean;
    /** `GET /auto-top-up` never answers. */
    autoTopUpPending?: boolean;
  }
}

/**
 * A provider over the fake auto top-up routes, fresh per story, in the story's language (the
 * outer `withMeter` sets the theme and direction). `autoTopUpFails` makes `GET /auto-top-up`
 * answer 503.
 */
const withAutoTopUp: Decorator = (Story, { parameters }) => {
  const language = parameters.language ? LANGUAGES[parameters.language] : undefined;
  const [setup] = useState(() => {
    const fake = createFakeAutoTopUp(parameters.autoTopUp ?? {});
    const fetchImpl: typeof fetch = async (input, init) =>
      parameters.autoTopUpFails ? new Response(JSON.stringify({ error: { code: "unavailable", message: "down" } }), { status: 503 }) : fake.fetch(input, init);
    return { fetch: fetchImpl, client: new QueryClient({ defaultOptions: { queries: { retry: false } } }) };
  });
  return (
    <MeterProvider
      baseUrl="/api/meter"
      fetch={parameters.autoTopUpPending ? () => new Promise<Response>(() => {}) : setup.fetch}
      queryClient={setup.client}
      live={false}
      locale={language?.locale ?? "en-US"}
      messages={language?.messages}
    >
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

/** The first answer never comes. */
export const Loading: Story = {
  parameters: { autoTopUpPending: true },
  play: async ({ canvasElement }) => {
    await within(canvasElement).findByText("Loading auto top-up…");
    await expect(canvasElement.querySelector(".mk-auto-top-up")).toHaveAttribute("aria-busy", "true");
  },
};

/** The state could not be loaded: an alert with a retry, reachable by keyboard. */
export const ErrorState: Story = {
  name: "Error",
  parameters: { autoTopUpFails: true, autoTopUp: { counters: [autoTopUpCounter()] } },
  play: async ({ canvasElement }) => {
    const canvas = within(canvasElement);
    await expect(await canvas.findByRole("alert")).toHaveTextContent("Auto top-up could not be loaded.");
    await userEvent.tab();
    await expect(canvas.getByRole("button", { name: "Try again" })).toHaveFocus();
  },
};

/** Paused, with its fix button, on the dark theme. */
export const Dark: Story = {
  parameters: { theme: "dark", autoTopUp: { counters: [autoTopUpCounter({ status: "paused", pausedReason: "card_declined", pausedMessage: null })] } },
};

export const German: Story = {
  parameters: { language: "de", autoTopUp: { counters: [autoTopUpCounter({ inFlight: true })] } },
  play: async ({ canvasElement }) => {
    await within(canvasElement).findByText(/Automatisches Aufladen ist an/);
    await expect(canvasElement.textContent).toContain("5.000");
    await expect(englishIn(canvasElement)).toEqual([]);
  },
};

/** Right to left; the threshold stays whole inside <bdi>. */
export const Arabic: Story = {
  parameters: { language: "ar", autoTopUp: { counters: [autoTopUpCounter({ status: "paused", pausedReason: "requires_action", pausedMessage: "Your bank requires authentication." })] } },
  play: async ({ canvasElement }) => {
    await within(canvasElement).findByRole("button", { name: "تحديث البطاقة" });
    await expect(englishIn(canvasElement)).toEqual([]);
  },
};

/** 340 px wide, in German, paused with its button. */
export const Narrow: Story = {
  decorators: [narrow],
  parameters: { language: "de", autoTopUp: { counters: [autoTopUpCounter({ status: "paused", pausedReason: "requires_action", pausedMessage: null })] } },
  play: async ({ canvasElement }) => {
    await within(canvasElement).findByRole("button", { name: "Karte ändern" });
    await expectNoOverflow(canvasElement);
  },
};
