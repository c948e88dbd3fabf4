export { createMeter } from "./createMeter.js";
export type { CreateMeterOptions, Meter } from "./createMeter.js";
export type { AuditDifference } from "./ledger/audit.js";
export type { Reservation } from "./ledger/reservation.js";
export type { LedgerEntry, EntryKind, EntriesOptions, DailyUsage, UsageByDayOptions } from "./ledger/history.js";
export type { DatabaseOption } from "./db.js";
export type { TimeoutOptions } from "./timeouts.js";
export type { BatchOptions } from "./ledger/batcher.js";
export { migrationFiles } from "./migrate.js";
export { MeterError, LimitReachedError, ERROR_CODES } from "../core/errors.js";
export type { ErrorCode } from "../core/errors.js";
export type { BillingHooks } from "./billing.js";
export { createMeterHandler, meterErrorResponse, toNodeHandler, toWebRequest, sendWebResponse, MAX_BROWSER_TOKEN_TTL } from "./http/index.js";
export type { MeterHandler, MeterHandlerOptions, Identity, CorsOptions, BrowserTokenOptions, ToWebRequestOptions } from "./http/index.js";
export type { LiveOptions } from "./live/liveHub.js";
export { linkStripeCustomer, stripeCustomerOf } from "./stripe/index.js";
export type {
  StripeOptions,
  StripePackOptions,
  StripeMeterOptions,
  SyncStripeMetersOptions,
  SyncStripeMetersResult,
  MeterSyncItem,
  WebhookResult,
} from "./stripe/index.js";
export { signAlert, verifyAlertSignature, ALERT_SIGNATURE_HEADER } from "./alerts/alertSignature.js";
export type { VerifyAlertSignatureOptions } from "./alerts/alertSignature.js";
export type { AlertsOptions, AlertThreshold, AlertsApi, MeterAlert, MeterAlertType, RunAlertsResult } from "./alerts/types.js";
export type {
  AutoTopUpOptions,
  AutoTopUpChangeOptions,
  AutoTopUpSettingsInput,
  AutoTopUpState,
  AutoTopUpStatus,
  AutoTopUpPauseReason,
  AutoTopUpApi,
  RunAutoTopUpOptions,
  RunAutoTopUpResult,
} from "./autoTopUp/types.js";
