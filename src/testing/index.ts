/*
 * meterkit/testing: what users need for their own tests, demos and stories. Nothing in the
 * production entries (`meterkit/server`, `meterkit/react`, …) starts a fake; everything that
 * does lives here. It loads in Node and in a browser bundle: the Node-only helpers import
 * their Node modules when called, never at load.
 */
export { startStripeStandIn } from "./startStripeStandIn.js";
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
export { createFakeMeter, counter, sampleUsage, samplePacks, sampleHistory, sampleEntries } from "./createFakeMeter.js";
export type { FakeMeter, FakeMeterOptions, FakeError } from "./createFakeMeter.js";
export { startEmbeddedPostgres, freePort } from "./startEmbeddedPostgres.js";
export type { LocalPostgres, EmbeddedPostgresOptions } from "./startEmbeddedPostgres.js";
export { createTestDatabase } from "./createTestDatabase.js";
export type { TestDatabase } from "./createTestDatabase.js";
export { createFakeAutoTopUp, autoTopUpCounter } from "./createFakeAutoTopUp.js";
export type { FakeAutoTopUp, FakeAutoTopUpOptions, FakeAutoTopUpCounter } from "./createFakeAutoTopUp.js";
