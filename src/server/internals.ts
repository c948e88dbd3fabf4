import { MeterError } from "../core/errors.js";
import type { Meter, MeterInternals } from "./createMeter.js";

/*
 * The pool, schema and configuration behind a meter, for the HTTP handler, live streams and
 * Stripe. They hang off the meter under a symbol that is not exported from any entry, so the
 * package's types show only the public API; code inside src/server reads them through
 * internalsOf().
 */
const INTERNALS = Symbol("meterkit.internals");

/** Attaches the internals to a meter made by createMeter (non-enumerable: not in logs or spreads). */
export function attachInternals<M extends object>(meter: M, internals: MeterInternals): M {
  Object.defineProperty(meter, INTERNALS, { value: internals, enumerable: false });
  return meter;
}

/** The internals of a meter made by createMeter; throws for anything else (a client, a mock). */
export function internalsOf(meter: Meter): MeterInternals {
  const internals = (meter as { [INTERNALS]?: MeterInternals } | null)?.[INTERNALS];
  if (!internals) {
    throw new MeterError("invalid_request", "Expected a meter from createMeter() of meterkit/server (a remote client or a mock has no database).");
  }
  return internals;
}
