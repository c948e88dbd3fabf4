export { ERROR_CODES, MeterError, LimitReachedError, errorFromBody, isErrorCode } from "./errors.js";
export type { ErrorCode, ErrorBody, ErrorDetails, ErrorDetailValue } from "./errors.js";
export { MAX_AMOUNT, assertAmount, assertId, parseDecimal } from "./amounts.js";
export type { AmountRule, Decimal } from "./amounts.js";
export { FINE_PER_UNIT, fineCostOfTokens, fineCostOfUsage, priceOf, priceTierFor, ceilFine } from "./pricing.js";
export type { ProviderUsage } from "./pricing.js";
export { parsePriceTable } from "./parsePriceTable.js";
export { periodBounds } from "./periods.js";
export { DEFAULT_PRICES } from "./prices.js";
export type { PeriodBounds } from "./periods.js";
export type {
  Unit,
  Period,
  Anchor,
  LimitGroup,
  PlanDefinition,
  MeterDefinition,
  ModelPrice,
  PriceTier,
  PriceTable,
  TokenUsage,
  CounterUsage,
  Usage,
  ReserveOptions,
  ReserveResult,
  MultiReserveResult,
  CommitOptions,
  CommitResult,
  ReleaseResult,
  TrackOptions,
  TrackResult,
  GrantOptions,
  GrantResult,
  AdjustOptions,
  AdjustResult,
  SubscriptionInput,
  Subscription,
  MeterApi,
  Pack,
} from "./types.js";
