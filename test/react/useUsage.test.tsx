import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { act, render, renderHook, screen, waitFor } from "@testing-library/react";
import { userEvent } from "@testing-library/user-event";
import { Suspense, type ReactNode } from "react";
import { describe, expect, it, vi } from "vitest";
import {
  isMeterError,
  LimitReachedDialog,
  MeterProvider,
  meterKeys,
  useCounter,
  useMeteredFetch,
  useSuspenseUsage,
  useUsage,
} from "../../src/react/index.js";
import { counter, createFakeMeter, sampleUsage } from "../../src/testing/index.js";

function setup(options: Parameters<typeof createFakeMeter>[0] = {}, provider: Record<string, unknown> = {}) {
  const meter = createFakeMeter(options);
  const queryClient = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  const wrapper = ({ children }: { children: ReactNode }) => (
    <MeterProvider baseUrl="/api/meter/" fetch={meter.fetch} queryClient={queryClient} {...provider}>
      {children}
    </MeterProvider>
  );
  return { meter, queryClient, wrapper };
}

describe("useUsage", () => {
  it("loads GET /usage and derives fraction used, level and dates for every counter", async () => {
    const { wrapper } = setup({ usage: sampleUsage([counter({ used: 7_160, held: 500 })]) }, { live: false });
    const { result } = renderHook(() => useUsage(), { wrapper });
    expect(result.current.status).toBe("pending");
    expect(result.current.isLoading).toBe(true);
    await waitFor(() => expect(result.current.status).toBe("success"));
    const [tokens] = result.current.counters;
    expect(tokens).toMatchObject({ key: "tokens", remaining: 12_340, used: 7_160, held: 500, quota: 20_000, granted: 0, total: 20_000, level: "ok" });
    expect(tokens!.fractionUsed).toBeCloseTo(0.383);
    expect(tokens!.periodEnd).toEqual(new Date("2026-12-01T00:00:00.000Z"));
  });

  it("throws a message naming the hook and the provider when used outside MeterProvider", () => {
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    expect(() => renderHook(() => useUsage())).toThrow("useUsage must be used inside <MeterProvider>.");
    expect(() => renderHook(() => useCounter("tokens"))).toThrow("useCounter must be used inside <MeterProvider>.");
  });

  it("reports the server's error code and message", async () => {
    const { wrapper } = setup({ usageError: { status: 401, code: "unauthenticated", message: "Sign in first." } }, { live: false });
    const { result } = renderHook(() => useUsage(), { wrapper });
    await waitFor(() => expect(result.current.status).toBe("error"));
    expect(result.current.error).toMatchObject({ name: "MeterError", code: "unauthenticated", status: 401, message: "Sign in first." });
  });

  it("caches in the app's QueryClient when there is one, under a meterkit key", async () => {
    const meter = createFakeMeter();
    const appClient = new QueryClient();
    const Probe = () => <span>{useCounter("tokens").counter?.remaining ?? "…"}</span>;
    render(
      <QueryClientProvider client={appClient}>
        <MeterProvider baseUrl="/api/meter" fetch={meter.fetch} live={false}>
          <Probe />
        </MeterProvider>
      </QueryClientProvider>,
    );
    await screen.findByText("12340");
    expect(appClient.getQueryData(meterKeys.usage("/api/meter"))).toMatchObject({ version: 1 });
  });

  it("sends the provider's headers (a function is called per request) to every route", async () => {
    const seen: string[] = [];
    const meter = createFakeMeter();
    const fetchSpy: typeof fetch = (input, init) => {
      seen.push(`${String(input)} ${new Headers(init?.headers).get("authorization")}`);
      return meter.fetch(input, init);
    };
    const queryClient = new QueryClient();
    renderHook(() => useUsage(), {
      wrapper: ({ children }) => (
        <MeterProvider baseUrl="/api/meter" fetch={fetchSpy} queryClient={queryClient} headers={() => ({ authorization: "Bearer t0k" })}>
          {children}
        </MeterProvider>
      ),
    });
    await waitFor(() => expect(seen).toEqual(expect.arrayContaining(["/api/meter/usage Bearer t0k", "/api/meter/usage/stream Bearer t0k"])));
  });
});

describe("live updates", () => {
  it("writes stream events into the cache and ignores one older than the cache", async () => {
    const { wrapper, meter } = setup();
    const { result } = renderHook(() => useCounter("tokens"), { wrapper });
    await waitFor(() => expect(result.current.isLive).toBe(true));
    act(() => meter.push(sampleUsage([counter({ used: 9_000 })], 5)));
    await waitFor(() => expect(result.current.counter?.remaining).toBe(11_000));
    act(() => meter.push(sampleUsage([counter({ used: 100 })], 3)));
    await new Promise((r) => setTimeout(r, 30));
    expect(result.current.counter?.remaining).toBe(11_000);
  });

  it("reconnects after the stream drops, and polls while it is down", async () => {
    const { wrapper, meter } = setup({}, { pollInterval: 40 });
    const { result } = renderHook(() => useUsage(), { wrapper });
    await waitFor(() => expect(result.current.isLive).toBe(true));
    const streamsBefore = meter.requests.filter((r) => r.url.endsWith("/stream")).length;
    const pollsBefore = meter.requests.filter((r) => r.url.endsWith("/usage")).length;
    act(() => meter.dropStreams());
    await waitFor(() => expect(result.current.isLive).toBe(false));
    // The server's retry hint is 1 s: within it, polling keeps the balance fresh.
    await waitFor(() => expect(meter.requests.filter((r) => r.url.endsWith("/usage")).length).toBeGreaterThan(pollsBefore + 1));
    await waitFor(() => expect(meter.requests.filter((r) => r.url.endsWith("/stream")).length).toBe(streamsBefore + 1), { timeout: 3000 });
    await waitFor(() => expect(result.current.isLive).toBe(true));
  });

  it("closes the stream when the tab stays hidden and reopens it when visible again", async () => {
    const { wrapper, meter } = setup();
    const { result } = renderHook(() => useUsage(), { wrapper });
    await waitFor(() => expect(meter.openStreams).toBe(1));
    vi.useFakeTimers({ shouldAdvanceTime: true });
    try {
      const visibility = vi.spyOn(document, "hidden", "get").mockReturnValue(true);
      act(() => void document.dispatchEvent(new Event("visibilitychange")));
      await act(() => vi.advanceTimersByTimeAsync(5_000));
      expect(meter.openStreams).toBe(1); // a quick tab switch keeps it
      await act(() => vi.advanceTimersByTimeAsync(6_000));
      expect(meter.openStreams).toBe(0);
      expect(result.current.isLive).toBe(false);
      visibility.mockReturnValue(false);
      act(() => void document.dispatchEvent(new Event("visibilitychange")));
      await waitFor(() => expect(meter.openStreams).toBe(1));
    } finally {
      vi.useRealTimers();
    }
  });

  it("a stream closed for a hidden tab stays closed (no reconnect while hidden), and showing the tab opens exactly one", async () => {
    const { wrapper, meter } = setup();
    renderHook(() => useUsage(), { wrapper });
    await waitFor(() => expect(meter.openStreams).toBe(1));
    const streamRequests = () => meter.requests.filter((r) => r.url.endsWith("/stream")).length;
    vi.useFakeTimers({ shouldAdvanceTime: true });
    try {
      const visibility = vi.spyOn(document, "hidden", "get").mockReturnValue(true);
      act(() => void document.dispatchEvent(new Event("visibilitychange")));
      await act(() => vi.advanceTimersByTimeAsync(10_500));
      expect(meter.openStreams).toBe(0);
      const requestsWhenClosed = streamRequests();
      // Longer than the longest backoff: nothing reconnects while the tab is hidden.
      await act(() => vi.advanceTimersByTimeAsync(40_000));
      expect(streamRequests()).toBe(requestsWhenClosed);
      visibility.mockReturnValue(false);
      act(() => void document.dispatchEvent(new Event("visibilitychange")));
      act(() => void document.dispatchEvent(new Event("visibilitychange")));
      await waitFor(() => expect(meter.openStreams).toBe(1));
      await act(() => vi.advanceTimersByTimeAsync(5_000));
      expect(meter.openStreams).toBe(1);
      expect(streamRequests()).toBe(requestsWhenClosed + 1);
    } finally {
      vi.useRealTimers();
    }
  });

  it("with live=\"poll\" refetches on an interval and opens no stream", async () => {
    const { wrapper, meter } = setup({}, { live: "poll", pollInterval: 30 });
    renderHook(() => useUsage(), { wrapper });
    await waitFor(() => expect(meter.requests.filter((r) => r.url.endsWith("/usage")).length).toBeGreaterThan(2));
    expect(meter.requests.some((r) => r.url.endsWith("/stream"))).toBe(false);
  });
});

describe("one limit store per provider", () => {
  it("two providers on one page are independent: a 402 in one opens only its own dialog", async () => {
    const limited = createFakeMeter({ usage: sampleUsage([counter({ used: 19_900 })]), limitReached: { counter: "tokens", remaining: 100, required: 1_500 } });
    const fine = createFakeMeter();
    const Send = ({ name }: { name: string }) => {
      const f = useMeteredFetch();
      return (
        <button type="button" onClick={() => void f("/api/chat", { method: "POST" })}>
          {name}
        </button>
      );
    };
    const app = (meter: ReturnType<typeof createFakeMeter>, name: string) => (
      <MeterProvider baseUrl={`/${name}`} fetch={meter.fetch} queryClient={new QueryClient()} live={false} locale="en-US">
        <Send name={`send ${name}`} />
        <LimitReachedDialog className={name} />
      </MeterProvider>
    );
    render(
      <>
        {app(limited, "a")}
        {app(fine, "b")}
      </>,
    );
    await userEvent.click(screen.getByRole("button", { name: "send b" }));
    await new Promise((r) => setTimeout(r, 30));
    expect(screen.queryByRole("dialog")).toBeNull();
    await userEvent.click(screen.getByRole("button", { name: "send a" }));
    const dialog = await screen.findByRole("dialog");
    expect(dialog).toHaveClass("a");
    expect(document.querySelectorAll("dialog")).toHaveLength(1);
  });
});

describe("typed results", () => {
  it("passes queryOptions through to TanStack Query (enabled: false never fetches)", async () => {
    const { wrapper, meter } = setup({}, { live: false });
    const { result } = renderHook(() => useUsage({ queryOptions: { enabled: false } }), { wrapper });
    await new Promise((r) => setTimeout(r, 30));
    expect(result.current.status).toBe("pending");
    expect(meter.requests).toHaveLength(0);
  });

  it("an error answer is a MeterRequestError that isMeterError recognises; a network failure is not", async () => {
    const { wrapper } = setup({ usageError: { status: 503, code: "unavailable", message: "down" } }, { live: false });
    const { result } = renderHook(() => useUsage(), { wrapper });
    await waitFor(() => expect(result.current.isError).toBe(true));
    expect(result.current.error).toMatchObject({ name: "MeterError", code: "unavailable", status: 503 });
    expect(isMeterError(result.current.error)).toBe(true);
    expect(isMeterError(new TypeError("Failed to fetch"))).toBe(false);
  });

  it.each([
    [502, "unavailable"],
    [404, "internal"],
  ])("an answer without the error body (a proxy's %i page) is a MeterRequestError with the code core would give it", async (status, code) => {
    const proxy: typeof fetch = async () => new Response("<html>Bad gateway</html>", { status, headers: { "content-type": "text/html" } });
    const { wrapper } = setup({}, { live: false, fetch: proxy });
    const { result } = renderHook(() => useUsage(), { wrapper });
    await waitFor(() => expect(result.current.isError).toBe(true));
    expect(result.current.error).toMatchObject({ name: "MeterError", code, status, message: `HTTP ${status}`, details: {} });
    expect(isMeterError(result.current.error)).toBe(true);
  });

  it("useSuspenseUsage suspends until loaded, then has data", async () => {
    const meter = createFakeMeter();
    const Probe = () => <span>{useSuspenseUsage().counters[0]!.key}</span>;
    render(
      <MeterProvider baseUrl="/api/meter" fetch={meter.fetch} queryClient={new QueryClient()} live={false}>
        <Suspense fallback={<span>waiting</span>}>
          <Probe />
        </Suspense>
      </MeterProvider>,
    );
    expect(screen.getByText("waiting")).toBeInTheDocument();
    expect(await screen.findByText("tokens")).toBeInTheDocument();
  });
});
