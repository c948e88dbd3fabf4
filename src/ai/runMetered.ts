import type { MeterApi } from "../core/types.js";
import { countTokens } from "./countTokens.js";
import { Hold } from "./hold.js";
import { MeteredStream } from "./MeteredStream.js";
import { usageEnding, type ReplyReader } from "./replyReader.js";
import type { UpperBound } from "./upperBound.js";
import type { MeteredChatOptions } from "./meteredChat.js";
import type { MeteringUnit } from "./types.js";
import type { PriceTable } from "../core/types.js";

/** @internal One metered call, whatever the API shape: the request as sent and its bound. */
export interface MeteredCall<P, R> {
  meter: MeterApi;
  userId: string;
  request: P;
  bound: UpperBound;
  model: string;
  meterKey: string;
  unit: MeteringUnit;
  prices: PriceTable;
  options: MeteredChatOptions;
  call: (request: P, context: { signal: AbortSignal }) => R | PromiseLike<R>;
  /** A fresh reader of this API shape's replies. */
  reader: () => ReplyReader;
}

/**
 * @internal The hold lifecycle every wrapper shares: reserve the bound (a denial throws
 * `LimitReachedError`), run the call with an abort signal, release the hold when the call fails
 * before any output; a streamed result becomes a {@link MeteredStream} that settles as it ends,
 * a whole reply commits the provider's usage (or the counted output when it reported none).
 */
export async function runMetered<P, R>(c: MeteredCall<P, R>): Promise<Awaited<R> | MeteredStream<unknown>> {
  const { options } = c;
  const hold = await Hold.reserve(c.meter, c.userId, c.bound, {
    meterKey: c.meterKey,
    unit: c.unit,
    prices: c.prices,
    ...pick(options, "ttl", "idempotencyKey", "metadata", "onSettle"),
  });
  const tokenizer = options.tokenizer ? { tokenizer: options.tokenizer } : {};
  const countOutput = (text: string) => countTokens(text, { model: c.model, prices: c.prices, ...tokenizer });

  // 1. Call the model; a failure before any output releases the hold.
  const controller = new AbortController();
  const forward = () => controller.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", forward, { once: true });
  if (options.signal?.aborted) forward();
  let result: Awaited<R>;
  try {
    result = await c.call(c.request, { signal: controller.signal });
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
  await hold.settle(usageEnding(reader, c.bound.inputTokens, countOutput, false));
  return result;
}

export function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return value !== null && typeof value === "object" && typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === "function";
}

export function pick<T extends object, K extends keyof T>(source: T, ...keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const key of keys) if (source[key] !== undefined) out[key] = source[key];
  return out;
}
