export { createMeterClient } from "./createMeterClient.js";
export type { MeterClient, MeterClientOptions } from "./createMeterClient.js";
export { MeterError, LimitReachedError, ERROR_CODES } from "../core/errors.js";
export type { ErrorCode } from "../core/errors.js";
