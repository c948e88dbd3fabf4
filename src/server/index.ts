export { createMeter } from "./createMeter.js";
export type { CreateMeterOptions, Meter, MeterInternals } from "./createMeter.js";
export type { AuditDifference } from "./ledger/audit.js";
export type { DatabaseOption } from "./db.js";
export { migrationFiles } from "./migrate.js";
export { MeterError, LimitReachedError, ERROR_CODES } from "../core/errors.js";
export type { ErrorCode } from "../core/errors.js";
export type { BillingHooks } from "./billing.js";
