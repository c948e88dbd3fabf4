import { assertId } from "../core/amounts.js";
import type { MeterApi } from "../core/types.js";
import { countTokens } from "./countTokens.js";
import { Hold } from "./hold.js";
import { MeteredStream } from "./MeteredStream.js";
import { meteringSettings, type MeteringSettings } from "./meteringSettings.js";
import { usageEnding, type ReplyReader } from "./replyReader.js";
import type { UpperBound } from "./upperBound.js";
import type { MeteredChatOptions } from "./meteredChat.js";

/** @internal One metered call, whatever the API shape. */
export interface MeteredCall<P, R> {
  meter: MeterApi;
  userId: string;
  options: MeteredChatOptions;
  /**
   * Checks the caller's request and completes it (its output limit), then bounds it with
   * `estimate` (the unit, prices and tokenizer in force). Throws `invalid_request` for a
   * request that cannot be bounded.
   */
  prepare: (estimate: MeteringSettings["estimate"]) => { request: P; bound: UpperBound; model: string };
  call: (request: P, context: { signal: AbortSignal }) => R | PromiseLike<R>;
  /** A fresh reader of this API shape's replies. */
  reader: () => ReplyReader;
}

/**
 * @internal The hold lifecycle every wrapper shares: read the options (one place for their
 * defaults), reserve the bound (a denial throws `LimitReachedError`), run the call with an
 * abort signal, release the hold when the call fails before any output; a streamed result
 * becomes a {@link MeteredStream} that settles as it ends, a whole reply commits the
 * provider's usage (or the counted output when it reported none).
 */
export async function runMetered<P, R>(c: MeteredCall<P, R>): Promise<Awaited<R> | MeteredStream<unknown>> {
  const { options } = c;
  assertId(c.userId, "userId");
  options.signal?.throwIfAborted();
  const settings = meteringSettings(options);
  const { request, bound, model } = c.prepare(settings.estimate);
  const hold = await Hold.reserve(c.meter, c.userId, bound, settings.hold);
  const countOutput = (text: string) => countTokens(text, { ...settings.estimate, model });

  // 1. Call the model; a failure before any output releases the hold.
  const controller = new AbortController();
  const forward = () => controller.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", forward, { once: true });
  if (options.signal?.aborted) forward();
  let result: Awaited<R>;
  try {
    result = await c.call(request, { signal: controller.signal });
  } catch (err) {
    options.signal?.removeEventListener("abort", forward);
    await hold.settle({ kind: "release" }).catch(() => {});
    throw err;
  }
  options.signal?.removeEventListener("abort", forward);

  // 2a. Streams settle as they end.
  if (isAsyncIterable(result)) {
    const stream = new MeteredStream(result, { hold, countOutput, reader: c.reader(), abortUpstream: (reason) => controller.abort(reason) });
    if (options.signal?.aborted) void stream.abort(options.signal.reason);
    else options.signal?.addEventListener("abort", () => void stream.abort(options.signal?.reason), { once: true });
    return stream;
  }

  // 2b. A whole reply: commit what the provider reported, or count it.
  const reader = c.reader();
  reader.addReply(result);
  await hold.settle(usageEnding(reader, bound.inputTokens, countOutput, false));
  return result;
}

export function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return value !== null && typeof value === "object" && typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === "function";
}
