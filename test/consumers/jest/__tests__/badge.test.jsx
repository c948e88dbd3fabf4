// A CommonJS project's Jest test (babel-jest turns this file into require() calls): the kit from
// meterkit/react, driven by the fake meter from meterkit/testing.
import { act, render, screen, waitFor } from "@testing-library/react";
import { BalanceBadge, MeterProvider } from "meterkit/react";
import { counter, createFakeMeter, sampleUsage } from "meterkit/testing";

test("BalanceBadge shows the balance and follows the live stream", async () => {
  const fake = createFakeMeter();
  render(
    <MeterProvider baseUrl="/api/meter" fetch={fake.fetch}>
      <BalanceBadge />
    </MeterProvider>,
  );
  // The visible text and the screen-reader announcement both carry the amount.
  const badge = await screen.findByRole("status");
  await waitFor(() => expect(badge.textContent).toMatch(/12,340 tokens left/));
  expect(badge.getAttribute("data-state")).toBe("ok");
  await act(async () => fake.push(sampleUsage([counter({ used: 19_000 })], 2)));
  await waitFor(() => expect(badge.textContent).toMatch(/1,000 tokens left/));
  expect(badge.getAttribute("data-state")).toBe("low");
});

test("meterkit/react was loaded as CommonJS", () => {
  expect(require.resolve("meterkit/react")).toMatch(/dist[\\/]cjs[\\/]react[\\/]index\.js$/);
});
