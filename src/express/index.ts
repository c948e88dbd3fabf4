import type { ErrorRequestHandler, Request, RequestHandler } from "express";
import { MeterError } from "../core/errors.js";
import type { Meter } from "../server/createMeter.js";
import { createMeterHandler, type Identity, type MeterHandlerOptions } from "../server/http/createMeterHandler.js";
import { serveNode } from "../server/http/node.js";

/** Options of {@link meterRouter}: the Web handler's, with `identify` taking the Express request. */
export interface MeterRouterOptions extends Omit<MeterHandlerOptions<Request>, "identify" | "basePath"> {
  /**
   * The signed-in user of a request, from your session (`req.user?.id`, a cookie…); null or
   * undefined means not signed in (401). Never read a user id the browser sends. Default:
   * none — browser routes then accept only browser tokens.
   */
  identify?: (req: Request) => Identity | Promise<Identity>;
}

/**
 * Every meterkit route as one Express middleware, for Express 5 and 4:
 * `app.use("/api/meter", meterRouter(meter, { identify: (req) => req.user?.id, secretKeys }))`.
 * Mount it before `express.json()` or after it, either works; for the Stripe webhook, before.
 * All the work is the Web handler's; this only translates the request and the response.
 */
export function meterRouter(meter: Meter, options: MeterRouterOptions = {}): RequestHandler {
  const { identify, ...rest } = options;
  const handler = createMeterHandler<Request>(meter, {
    ...rest,
    identify: identify && ((_request, req) => identify(req)),
  });
  return (req, res, next) => {
    // Inside app.use("/prefix", …) Express strips the prefix from req.url: route on the rest.
    // A request that is not even a valid URL (a malformed Host) gets meterkit's JSON 400, not
    // Express's HTML error page; any other failure goes to Express's error handling.
    serveNode(handler, req, res, req.url, () => req).catch(next);
  };
}

/**
 * An Express error handler that answers a `MeterError` thrown in your own routes with its JSON
 * and status — above all `LimitReachedError` → 402 `limit_reached` with `counter`, `remaining`
 * and `required`, which meterkit/react turns into the limit dialog. Anything else goes to the
 * next error handler. Add it after your routes: `app.use(meterErrorHandler())`.
 */
export function meterErrorHandler(): ErrorRequestHandler {
  return (err, _req, res, next) => {
    if (!(err instanceof MeterError) || res.headersSent) return next(err);
    res.status(err.status).set("cache-control", "no-store").json(err.toJSON());
  };
}

export { LimitReachedError, MeterError } from "../core/errors.js";
export type { Identity } from "../server/http/createMeterHandler.js";
