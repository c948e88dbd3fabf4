export { createMeterHandler } from "./createMeterHandler.js";
export type { MeterHandler, MeterHandlerOptions, Identity } from "./createMeterHandler.js";
export { meterErrorResponse } from "./respond.js";
export { toNodeHandler, toWebRequest, sendWebResponse, type ToWebRequestOptions } from "./node.js";
export type { CorsOptions } from "./cors.js";
export type { BrowserTokenOptions } from "./browserToken.js";
export { MAX_BROWSER_TOKEN_TTL } from "./browserToken.js";
