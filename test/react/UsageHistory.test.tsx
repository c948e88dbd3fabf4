import { act, screen, waitFor, within } from "@testing-library/react";
import { userEvent } from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { UsageHistory } from "../../src/react/index.js";
import { counter, sampleEntries, sampleUsage } from "../../src/testing/index.js";
import { renderWithMeter } from "./render.js";

describe("UsageHistory", () => {
  it("draws a bar per day with today's marked, backed by a table, and lists the newest entries", async () => {
    const ref = { current: null as HTMLElement | null };
    const { container } = renderWithMeter(<UsageHistory ref={ref} days={7} classNames={{ today: "today", entries: "entries" }} />);
    const chart = await screen.findByRole("img", { name: "Tokens per day (UTC), last 7 days" });
    expect(chart.querySelectorAll("rect")).toHaveLength(7);
    expect(container.querySelector("rect.mk-history-bar-today.today")).toBe(chart.querySelectorAll("rect")[6]);
    await waitFor(() => expect(container.querySelector("table.entries")).not.toBeNull());
    const table = container.querySelector<HTMLElement>("table.entries")!;
    expect(table).toHaveClass("mk-history-entries");
    const rows = within(table).getAllByRole("row").slice(1);
    // 20 entries on the first page; each commit that gave part of its hold back adds a "returned" row.
    expect(rows[0]).toHaveAttribute("data-kind", "commit");
    expect(rows[1]).toHaveAttribute("data-kind", "refund");
    expect(rows[1]).toHaveTextContent("returned");
    expect(rows[2]).toHaveAttribute("data-kind", "reserve");
    expect(ref.current).toHaveAttribute("data-state", "ready");
  });

  it("pages back with Show older entries until the first entry", async () => {
    const { container } = renderWithMeter(<UsageHistory showChart={false} pageSize={10} />, { entries: sampleEntries(25) });
    const more = await screen.findByRole("button", { name: "Show older entries" });
    await userEvent.click(more);
    await userEvent.click(await screen.findByRole("button", { name: "Show older entries" }));
    await waitFor(() => expect(container.querySelector('tr[data-kind="grant"]')).not.toBeNull());
    expect(screen.queryByRole("button", { name: "Show older entries" })).toBeNull();
    expect(container.querySelectorAll("tbody tr:not([data-kind='refund'])")).toHaveLength(25);
  });

  it("reads the history again when the balance changes", async () => {
    const { meter } = renderWithMeter(<UsageHistory />);
    await screen.findByRole("img");
    const reads = () => meter.requests.filter((r) => r.url.includes("/entries")).length;
    await waitFor(() => expect(reads()).toBeGreaterThan(0));
    const before = reads();
    act(() => meter.push(sampleUsage([counter({ used: 9_000 })], 2)));
    await waitFor(() => expect(reads()).toBeGreaterThan(before));
  });

  it("says so when there is nothing yet", async () => {
    renderWithMeter(<UsageHistory />, { entries: [], history: [{ date: "2026-11-27", counters: { tokens: 0 } }] });
    expect(await screen.findByText("No entries yet.")).toBeInTheDocument();
    expect(await screen.findByText("No usage in this period.")).toBeInTheDocument();
  });

  it("is busy while loading, and a failed load is an alert with a retry", async () => {
    const pending = renderWithMeter(<UsageHistory />, { historyPending: true });
    expect(pending.container.firstChild).toHaveAttribute("data-state", "loading");
    expect(pending.container.firstChild).toHaveAttribute("aria-busy", "true");
    pending.unmount();
    const { meter } = renderWithMeter(<UsageHistory />, { historyError: { status: 503, code: "unavailable", message: "down" } });
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("The history could not be loaded.");
    // The first Usage (a new version) reads both again, still failing: let that round finish, so
    // the click below lands on the button on screen rather than one a re-render replaced.
    const reads = () => meter.requests.filter((r) => /\/(usage\/history|entries)\b/.test(r.url)).length;
    await waitFor(() => expect(reads()).toBeGreaterThanOrEqual(4));
    meter.recover();
    const before = reads();
    await userEvent.click(await screen.findByRole("button", { name: "Try again" }));
    await waitFor(() => expect(reads()).toBeGreaterThan(before));
    // Both queries are read again (under load this takes a moment).
    expect(await screen.findByRole("img", {}, { timeout: 5000 })).toBeInTheDocument();
    await waitFor(() => expect(screen.queryByRole("alert")).toBeNull(), { timeout: 5000 });
  }, 15_000);
});
