import { act, screen, waitFor, within } from "@testing-library/react";
import { userEvent } from "@testing-library/user-event";
import { useState } from "react";
import { describe, expect, it, vi } from "vitest";
import { LimitReachedError } from "../../src/core/errors.js";
import { createLimitReachedStore, LimitReachedDialog, withLimitReached, useMeteredFetch } from "../../src/react/index.js";
import { counter, sampleUsage } from "../../src/testing/index.js";
import { renderWithMeter } from "./render.js";

const usage = sampleUsage([counter({ used: 19_900 })]);
const limitReached = { counter: "tokens", remaining: 100, required: 1_500 };

function Chat() {
  const fetchMetered = useMeteredFetch();
  const [status, setStatus] = useState("");
  return (
    <>
      <button type="button" onClick={async () => setStatus(String((await fetchMetered("/api/chat", { method: "POST" })).status))}>
        Send
      </button>
      <output>{status}</output>
    </>
  );
}

describe("LimitReachedDialog", () => {
  it("opens by itself on a 402 limit_reached answer, labelled and described, with the packs to buy", async () => {
    const navigate = vi.fn();
    renderWithMeter(
      <>
        <Chat />
        <LimitReachedDialog navigate={navigate} />
      </>,
      { usage, limitReached, provider: { live: false } },
    );
    expect(screen.queryByRole("dialog")).toBeNull();
    await userEvent.click(screen.getByRole("button", { name: "Send" }));
    const dialog = await screen.findByRole("dialog", { name: "Tokens limit reached" });
    // The response still reaches the caller untouched.
    expect(await screen.findByText("402")).toBeInTheDocument();
    await waitFor(() => expect(dialog).toHaveAccessibleDescription(/renews on Dec 1, 2026/));
    expect(dialog).toHaveAccessibleDescription(/This needs 1,500 tokens; you have 100 tokens left\./);
    const buy = await within(dialog).findByRole("button", { name: /Starter · 100,000 tokens · \$5\.00/ });
    expect(within(dialog).getByRole("button", { name: /Pro · 1,000,000 tokens · \$39\.00/ })).toBeInTheDocument();
    await userEvent.click(buy);
    await waitFor(() => expect(navigate).toHaveBeenCalledWith("https://checkout.example/session/pack_small"));
  });

  it("an uncontrolled dialog opened by the store's open() closes on its close()", async () => {
    const { store } = renderWithMeter(<LimitReachedDialog />, { usage, provider: { live: false } });
    act(() => store.getState().open(limitReached));
    expect(await screen.findByRole("dialog")).toBeInTheDocument();
    act(() => store.getState().close());
    await waitFor(() => expect(screen.queryByRole("dialog")).toBeNull());
  });

  it("never opens for an unlimited counter", async () => {
    const { store } = renderWithMeter(<LimitReachedDialog />, { usage: sampleUsage([counter({ quota: null })]), provider: { live: false } });
    await new Promise((r) => setTimeout(r, 30)); // usage loaded
    act(() => store.getState().open({ counter: "tokens", remaining: 0, required: 10 }));
    await new Promise((r) => setTimeout(r, 30));
    expect(screen.queryByRole("dialog")).toBeNull();
  });

  it("opened by hand while credit remains, it offers packs instead of announcing a limit", async () => {
    renderWithMeter(<LimitReachedDialog defaultOpen />, { usage: sampleUsage([counter({ used: 5_000 })]), provider: { live: false } });
    const dialog = await screen.findByRole("dialog", { name: "Buy more tokens" });
    await waitFor(() => expect(dialog).toHaveAccessibleDescription(/You have 15,000 tokens left\./));
    expect(dialog).not.toHaveAccessibleDescription(/used all/);
  });

  it("traps focus, closes on Escape and returns focus to where it was", async () => {
    const { store } = renderWithMeter(
      <>
        <Chat />
        <LimitReachedDialog />
      </>,
      { usage, limitReached, provider: { live: false } },
    );
    const send = screen.getByRole("button", { name: "Send" });
    await userEvent.click(send);
    const dialog = await screen.findByRole("dialog");
    await within(dialog).findByRole("button", { name: /Starter/ });
    const buttons = within(dialog).getAllByRole("button");
    expect(buttons.map((b) => b.textContent)).toEqual([expect.stringMatching(/^Starter/), expect.stringMatching(/^Pro/), "Not now"]);
    // The documented first-focus rule: the close button, whether the packs are loaded or not.
    expect(buttons[2]).toHaveFocus();
    buttons[2]!.focus();
    await userEvent.tab();
    expect(buttons[0]).toHaveFocus();
    await userEvent.tab({ shift: true });
    expect(buttons[2]).toHaveFocus();
    await userEvent.keyboard("{Escape}");
    expect(screen.queryByRole("dialog")).toBeNull();
    expect(send).toHaveFocus();
    expect(store.getState().isOpen).toBe(false);
  });

  it("says so when no pack is for sale, and the close button closes it", async () => {
    renderWithMeter(<LimitReachedDialog defaultOpen />, { usage, packs: [] });
    const dialog = await screen.findByRole("dialog");
    expect(await within(dialog).findByText("No credit packs are available right now.")).toBeInTheDocument();
    await userEvent.click(within(dialog).getByRole("button", { name: "Not now" }));
    expect(screen.queryByRole("dialog")).toBeNull();
  });

  it("when controlled, reports open requests through onOpenChange and follows the open prop", async () => {
    const onOpenChange = vi.fn();
    function App() {
      const [open, setOpen] = useState(false);
      return (
        <>
          <button type="button" onClick={() => setOpen(true)}>
            Allow
          </button>
          <LimitReachedDialog open={open} onOpenChange={(next) => (onOpenChange(next), !next && setOpen(false))} />
        </>
      );
    }
    const { store } = renderWithMeter(<App />, { usage });
    act(() => store.getState().open(new LimitReachedError({ counter: "tokens", remaining: 0, required: 10 })));
    expect(onOpenChange).toHaveBeenCalledWith(true);
    expect(screen.queryByRole("dialog")).toBeNull(); // the app has not said yes
    await userEvent.click(screen.getByRole("button", { name: "Allow" }));
    const dialog = await screen.findByRole("dialog");
    await userEvent.click(within(dialog).getByRole("button", { name: "Not now" }));
    expect(onOpenChange).toHaveBeenLastCalledWith(false);
    expect(screen.queryByRole("dialog")).toBeNull();
  });

  it("opens from withLimitReached outside React, through a store given to the provider", async () => {
    const store = createLimitReachedStore();
    const onLimitReached = vi.fn();
    const fetch402 = vi.fn(async () => new Response(JSON.stringify({ error: { code: "limit_reached", message: "No.", ...limitReached } }), { status: 402 }));
    const res = await withLimitReached(fetch402, store, onLimitReached)("/api/chat");
    expect(res.status).toBe(402);
    expect(await res.json()).toMatchObject({ error: { code: "limit_reached" } }); // body still readable
    expect(store.getState()).toMatchObject({ isOpen: true, info: limitReached });
    expect(onLimitReached.mock.calls[0]![0]).toBeInstanceOf(LimitReachedError);
    renderWithMeter(<LimitReachedDialog />, { usage, provider: { limitReachedStore: store } });
    expect(await screen.findByRole("dialog", { name: "Tokens limit reached" })).toBeInTheDocument();
  });

  it("useMeteredFetch calls onLimitReached with the error", async () => {
    const onLimitReached = vi.fn();
    function Send() {
      const f = useMeteredFetch({ onLimitReached });
      return (
        <button type="button" onClick={() => void f("/api/chat", { method: "POST" })}>
          Go
        </button>
      );
    }
    renderWithMeter(<Send />, { usage, limitReached, provider: { live: false } });
    await userEvent.click(screen.getByRole("button", { name: "Go" }));
    await waitFor(() => expect(onLimitReached).toHaveBeenCalledOnce());
    expect(onLimitReached.mock.calls[0]![0]).toMatchObject({ code: "limit_reached", required: 1_500 });
  });

  it("stays mounted with data-state=closed while its exit animation runs, then unmounts", async () => {
    const style = document.createElement("style");
    style.textContent = '.mk-dialog[data-state="closed"] { animation-name: out; animation-duration: 100ms; }';
    document.head.append(style);
    try {
      renderWithMeter(<LimitReachedDialog defaultOpen />, { usage });
      const dialog = await screen.findByRole("dialog");
      expect(dialog).toHaveAttribute("data-state", "open");
      await userEvent.click(within(dialog).getByRole("button", { name: "Not now" }));
      expect(dialog).toBeInTheDocument();
      expect(dialog).toHaveAttribute("data-state", "closed");
      // The end of another animation (the opening one, the backdrop's) does not count.
      act(() => void dialog.dispatchEvent(Object.assign(new Event("animationcancel"), { animationName: "in" })));
      expect(dialog).toBeInTheDocument();
      act(() => void dialog.dispatchEvent(Object.assign(new Event("animationend"), { animationName: "out" })));
      expect(dialog).not.toBeInTheDocument();
    } finally {
      style.remove();
    }
  });

  it("forwards its ref to the <dialog> and merges style", async () => {
    const ref = { current: null as HTMLDialogElement | null };
    renderWithMeter(<LimitReachedDialog ref={ref} defaultOpen style={{ maxWidth: 300 }} />, { usage });
    const dialog = await screen.findByRole("dialog");
    expect(ref.current).toBe(dialog);
    expect(dialog.style.maxWidth).toBe("300px");
  });

  it("retries a failed packs load from its alert", async () => {
    const { meter } = renderWithMeter(<LimitReachedDialog defaultOpen />, { usage, packsError: { status: 503, code: "unavailable", message: "down" } });
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("Packs could not be loaded.");
    meter.recover();
    await userEvent.click(within(alert).getByRole("button", { name: "Try again" }));
    expect(await screen.findByRole("button", { name: /Starter/ })).toBeInTheDocument();
  });

  it("puts className and classNames on its parts", async () => {
    renderWithMeter(<LimitReachedDialog defaultOpen className="d" classNames={{ title: "t", close: "c" }} />, { usage });
    const dialog = await screen.findByRole("dialog");
    expect(dialog).toHaveClass("mk-dialog", "d");
    expect(within(dialog).getByRole("heading")).toHaveClass("mk-dialog-title", "t");
    expect(within(dialog).getByRole("button", { name: "Not now" })).toHaveClass("mk-dialog-close", "c");
  });
});
