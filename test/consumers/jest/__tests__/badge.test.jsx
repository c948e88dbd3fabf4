// A CommonJS project's Jest test (babel-jest turns this file into require() calls): the kit from
// meterkit/react, driven by the fake meter from meterkit/testing.
import { act, render, screen } from "@testing-library/react";
import { BalanceBadge, MeterProvider } from "meterkit/react";
import { counter, createFakeMeter, sampleUsage } from "meterkit/testing";

test("BalanceBadge shows the balance and follows the live stream", async () => {
  const fake = createFakeMeter();
  render(
    <MeterProvider baseUrl="/api/meter" fetch={fake.fetch}>
      <BalanceBadge />
    </MeterProvider>,
  );
  expect(await screen.findByText(/12,340 tokens/)).toBeTruthy();
  await act(async () => fake.push(sampleUsage([counter({ used: 19_000 })], 2)));
  expect(await screen.findByText(/1,000 tokens/)).toBeTruthy();
});

test("meterkit/react was loaded as CommonJS", () => {
  expect(require.resolve("meterkit/react")).toMatch(/dist[\\/]cjs[\\/]react[\\/]index\.js$/);
});
