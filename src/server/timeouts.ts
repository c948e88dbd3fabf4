import { MeterError } from "../core/errors.js";

/**
 * Time bounds on every database call, in milliseconds. A network path that stops answering
 * (packets dropped, not refused) otherwise leaves a call waiting for the operating system's
 * TCP timeout, many minutes; past a bound the call fails with `unavailable` (HTTP 503) and,
 * since every ledger operation is one statement, nothing is half-written.
 */
export interface TimeoutOptions {
  /** Opening a connection, or waiting for a free one in the pool. Default 5 000. */
  connect?: number;
  /**
   * One statement: past this the client stops waiting for its answer, whatever the network
   * does (pg's `query_timeout`), and discards that connection. Default 10 000.
   */
  statement?: number;
  /** `meter.close()`: past this, connections still open are destroyed and close() resolves. Default 5 000. */
  close?: number;
  /**
   * Idle time before TCP keepalive probes start on every connection meterkit opens (the pool
   * and the `LISTEN` connection), so a silently dead peer is noticed. Default 10 000.
   */
  keepAlive?: number;
}

export type ResolvedTimeouts = Required<TimeoutOptions>;

/** The defaults of {@link TimeoutOptions}. */
export const DEFAULT_TIMEOUTS: Readonly<Required<TimeoutOptions>> = Object.freeze({
  connect: 5_000,
  statement: 10_000,
  close: 5_000,
  keepAlive: 10_000,
});

/** Checks `createMeter({ timeouts })` once, with messages that say what to fix. */
export function resolveTimeouts(options: TimeoutOptions | undefined): ResolvedTimeouts {
  if (options !== undefined && (options === null || typeof options !== "object" || Array.isArray(options))) {
    throw new MeterError("invalid_request", "createMeter: `timeouts` must be an object of milliseconds.", { field: "timeouts" });
  }
  const out = { ...DEFAULT_TIMEOUTS };
  for (const [name, value] of Object.entries(options ?? {})) {
    if (!(name in DEFAULT_TIMEOUTS)) {
      throw new MeterError("invalid_request", `createMeter: unknown timeout "${name}" (known: ${Object.keys(DEFAULT_TIMEOUTS).join(", ")}).`, {
        field: `timeouts.${name}`,
      });
    }
    if (value === undefined) continue;
    // 0 is not "no bound": pg reads 0 as "wait forever", which is the hang this option exists to prevent.
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0 || value > 2_147_483_647) {
      throw new MeterError("invalid_request", `createMeter: timeouts.${name} must be a positive whole number of milliseconds.`, {
        field: `timeouts.${name}`,
      });
    }
    out[name as keyof TimeoutOptions] = value;
  }
  return out;
}

/** Resolves true when `work` settles within `ms`, false otherwise (it is left running). */
export function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    timer.unref();
    const done = () => {
      clearTimeout(timer);
      resolve(true);
    };
    work.then(done, done);
  });
}
