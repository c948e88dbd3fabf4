import { QueryClient } from "@tanstack/react-query";
import { act, renderHook, waitFor } from "@testing-library/react";
import type { ReactNode } from "react";
import { describe, expect, it } from "vitest";
import { MeterProvider, useAutoTopUp } from "../../src/react/index.js";
import { autoTopUpCounter, createFakeAutoTopUp } from "../../src/testing/index.js";

describe("useAutoTopUp", () => {
  it("sends an Idempotency-Key on PUT /auto-top-up: one fresh key per call of update", async () => {
    const fake = createFakeAutoTopUp({ counters: [autoTopUpCounter()] });
    const keys: Array<string | null> = [];
    const fetchImpl: typeof fetch = (input, init) => {
      if (init?.method === "PUT") keys.push(new Headers(init.headers).get("idempotency-key"));
      return fake.fetch(input, init);
    };
    const queryClient = new QueryClient({ defaultOptions: { queries: { retry: false } } });
    const wrapper = ({ children }: { children: ReactNode }) => (
      <MeterProvider baseUrl="/api/meter" fetch={fetchImpl} queryClient={queryClient} live={false} locale="en-US">
        {children}
      </MeterProvider>
    );
    const { result } = renderHook(() => useAutoTopUp({ counter: "tokens" }), { wrapper });
    await waitFor(() => expect(result.current.status).toBe("success"));
    await act(() => result.current.update({ counter: "tokens", enabled: false }));
    await act(() => result.current.update({ counter: "tokens", enabled: true }));
    expect(keys).toHaveLength(2);
    expect(keys[0]).toMatch(/^[\w-]{16,}$/);
    expect(keys[1]).toMatch(/^[\w-]{16,}$/);
    expect(keys[0]).not.toBe(keys[1]);
  });
});
