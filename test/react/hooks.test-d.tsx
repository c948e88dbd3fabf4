import type { UseQueryResult } from "@tanstack/react-query";
import { createRef } from "react";
import { describe, expectTypeOf, it } from "vitest";
import type { Usage } from "../../src/core/types.js";
import {
  BalanceBadge,
  BuyCreditsButton,
  CreditPacks,
  LimitReachedDialog,
  UsageHistory,
  UsageMeter,
  isMeterError,
  useCheckout,
  useCounter,
  useMeteredFetch,
  useSuspenseUsage,
  useUsage,
  useUsageHistory,
  type CounterView,
  type MeterRequestError,
  type UseUsageResult,
} from "../../src/react/index.js";

// Type tests: checked by `tsc -p tsconfig.json` (`npm run typecheck`, the first step of `npm test`); never run.
describe("hook types", () => {
  it("useUsage narrows on status", () => {
    const r = useUsage();
    expectTypeOf(r).toEqualTypeOf<UseUsageResult>();
    if (r.status === "success") {
      expectTypeOf(r.usage).toEqualTypeOf<Usage>();
      expectTypeOf(r.counters).toEqualTypeOf<CounterView[]>();
      expectTypeOf(r.error).toEqualTypeOf<Error | null>();
    }
    if (r.isSuccess) expectTypeOf(r.usage).toEqualTypeOf<Usage>();
    if (r.status === "error") {
      expectTypeOf(r.error).toEqualTypeOf<Error>();
      expectTypeOf(r.usage).toEqualTypeOf<undefined>();
    }
    if (r.isPending) {
      expectTypeOf(r.usage).toEqualTypeOf<undefined>();
      expectTypeOf(r.error).toEqualTypeOf<null>();
    }
  });

  it("useCounter narrows the same way", () => {
    const r = useCounter("tokens");
    if (r.status === "error") expectTypeOf(r.error).toEqualTypeOf<Error>();
    if (r.isSuccess) expectTypeOf(r.counter).toEqualTypeOf<CounterView | undefined>();
    // @ts-expect-error a counter result has no `counters`
    void r.counters;
  });

  it("a counter view narrows on unlimited", () => {
    const c = {} as CounterView;
    if (c.unlimited) {
      expectTypeOf(c.remaining).toEqualTypeOf<null>();
      expectTypeOf(c.level).toEqualTypeOf<"unlimited">();
    } else {
      expectTypeOf(c.remaining).toEqualTypeOf<number>();
      expectTypeOf(c.total).toEqualTypeOf<number>();
    }
  });

  it("passes TanStack query options through, but not the key or the function", () => {
    useUsage({ queryOptions: { enabled: false, refetchInterval: 5_000, staleTime: 10, retry: 2 } });
    // @ts-expect-error the kit owns the key
    useUsage({ queryOptions: { queryKey: ["x"] } });
    // @ts-expect-error and the function
    useUsage({ queryOptions: { queryFn: () => ({}) as Usage } });
  });

  it("useSuspenseUsage always has data", () => {
    const r = useSuspenseUsage();
    expectTypeOf(r.usage).toEqualTypeOf<Usage>();
    expectTypeOf(r.status).toEqualTypeOf<"success">();
  });

  it("isMeterError narrows unknown errors to MeterRequestError", () => {
    const e: unknown = null;
    if (isMeterError(e)) {
      expectTypeOf(e).toEqualTypeOf<MeterRequestError>();
      expectTypeOf(e.code).toEqualTypeOf<MeterRequestError["code"]>();
      expectTypeOf(e.status).toEqualTypeOf<number>();
    }
  });

  it("useCheckout takes onSuccess and onError", () => {
    const r = useCheckout({ onSuccess: (url, packId) => expectTypeOf([url, packId]).toEqualTypeOf<string[]>(), onError: (error) => expectTypeOf(error).toEqualTypeOf<Error>() });
    expectTypeOf(r.checkout).toEqualTypeOf<(packId: string) => Promise<string | undefined>>();
    expectTypeOf(r.status).toEqualTypeOf<"idle" | "pending" | "error" | "success">();
  });

  it("useMeteredFetch takes onLimitReached and returns a fetch", () => {
    const f = useMeteredFetch({ onLimitReached: (e) => expectTypeOf(e.required).toEqualTypeOf<number>() });
    expectTypeOf(f).toEqualTypeOf<typeof fetch>();
  });

  it("useUsageHistory is a TanStack query result", () => {
    const h = useUsageHistory({ days: 7 });
    expectTypeOf(h).toMatchTypeOf<UseQueryResult<{ days: Array<{ date: string; counters: Record<string, number> }> }, Error>>();
  });
});

describe("component types", () => {
  it("every component takes a ref to its root element", () => {
    void (<BalanceBadge ref={createRef<HTMLSpanElement>()} />);
    void (<BuyCreditsButton packId="p" ref={createRef<HTMLButtonElement>()} />);
    void (<LimitReachedDialog ref={createRef<HTMLDialogElement>()} />);
    void (<CreditPacks ref={createRef<HTMLDivElement>()} />);
    void (<UsageMeter ref={createRef<HTMLDivElement>()} />);
    void (<UsageHistory ref={createRef<HTMLElement>()} />);
    // @ts-expect-error the dialog's root is a <dialog>, not a span
    void (<LimitReachedDialog ref={createRef<HTMLSpanElement>()} />);
  });

  it("formatLabel may return a node", () => {
    void (<BalanceBadge formatLabel={({ remaining }) => <b>{remaining}</b>} />);
  });
});
