/** Signals set by the Node adapters, per Web `Request` they built. */
const SIGNALS = new WeakMap<Request, AbortSignal>();

/** Records the signal that aborts when `request`'s connection is gone (the Node adapters call it). */
export function bindConnectionSignal(request: Request, signal: AbortSignal): void {
  SIGNALS.set(request, signal);
}

/**
 * The signal that aborts when the client's connection is gone: the adapter's own when it
 * recorded one, else `request.signal`. Why not always `request.signal`: a `Request` built with
 * `{ signal }` gets a signal that follows the given one through a weak reference to its inner
 * controller (Node's fetch), so after a garbage collection the abort may never arrive — and a
 * live stream would then hold its slot in the stream limits for ever.
 */
export function connectionSignal(request: Request): AbortSignal {
  return SIGNALS.get(request) ?? request.signal;
}
