// A bundler project (Vite, Next.js) writing JSX.
import { LimitReachedError, type Usage } from "meterkit";
import { createMeter, createMeterHandler } from "meterkit/server";
import { meterRouter } from "meterkit/express";
import { createMeterClient } from "meterkit/client";
import { BalanceBadge, MeterProvider, formatAmount, type BalanceBadgeProps } from "meterkit/react";
import { countTokens, meterMiddleware } from "meterkit/ai";
import { createFakeMeter } from "meterkit/testing";

export const tokens: number = countTokens("hi", { model: "gpt-4o" });
export const label: string = formatAmount(1234, "tokens");
export const props: BalanceBadgeProps = { counter: "tokens" };
export const usage = (u: Usage): number => u.counters.length;
// @ts-expect-error: the types are real, not `any` (a count is not a string)
export const wrong: string = countTokens("hi", { model: "gpt-4o" });
export const every = [createMeter, createMeterHandler, meterRouter, createMeterClient, MeterProvider, BalanceBadge, meterMiddleware, createFakeMeter, LimitReachedError];

export const page = (
  <MeterProvider baseUrl="/api/meter">
    <BalanceBadge counter="tokens" />
  </MeterProvider>
);
