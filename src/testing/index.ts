/*
 * meterkit/testing: what users need for their own tests, demos and stories. Nothing in the
 * production entries (`meterkit/server`, `meterkit/react`, …) starts a fake; everything that
 * does lives here.
 */
export { startStripeStandIn } from "./stripeStandIn/startStripeStandIn.js";
export type {
  StripeStandIn,
  StripeStandInOptions,
  StandInFailure,
  StandInCard,
  StandInPaymentIntent,
  StandInSession,
  StandInMeterEvent,
  StandInDelivery,
  StandInEvent,
  RecordedRequest,
} from "./stripeStandIn/types.js";
export { createFakeMeter, counter, sampleUsage, samplePacks } from "./createFakeMeter.js";
export type { FakeMeter, FakeMeterOptions } from "./createFakeMeter.js";
export { startEmbeddedPostgres, freePort } from "./startEmbeddedPostgres.js";
export type { LocalPostgres, EmbeddedPostgresOptions } from "./startEmbeddedPostgres.js";
export { createFakeAutoTopUp, autoTopUpCounter } from "./createFakeAutoTopUp.js";
export type { FakeAutoTopUp, FakeAutoTopUpOptions, FakeAutoTopUpCounter } from "./createFakeAutoTopUp.js";
