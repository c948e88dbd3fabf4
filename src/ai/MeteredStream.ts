import type { Ending, Hold } from "./hold.js";
import { usageEnding, type ReplyReader } from "./replyReader.js";
import type { Settlement } from "./types.js";

/** @internal What a MeteredStream needs from the call that opened it. */
export interface StreamMetering {
  hold: Hold;
  /** Aborts the upstream request (the signal handed to the call). */
  abortUpstream: (reason?: unknown) => void;
  /** Counts output text the provider did not report. */
  countOutput: (text: string) => number;
  /** Reads the chunks of this API shape (chat chunks, Responses events, Anthropic events). */
  reader: ReplyReader;
}

/**
 * A model's chunk stream with metering attached: iterate it like the provider's stream. When it
 * ends, the provider's reported usage is committed; when the consumer stops early (`break`,
 * {@link MeteredStream.abort}, the `signal` option), the input and the output produced so far
 * are committed; when the provider fails before any output, the hold is released.
 * Iterate it once.
 */
export class MeteredStream<Chunk> implements AsyncIterable<Chunk> {
  /**
   * Resolves with the {@link Settlement} once the call is charged or released; rejects if the
   * meter could not settle it (the same error is thrown from the iteration).
   */
  readonly settled: Promise<Settlement>;
  readonly #upstream: AsyncIterable<Chunk>;
  readonly #m: StreamMetering;
  #iterator: AsyncIterator<Chunk> | undefined;
  #done = false;
  #stopped = false;
  #resolve!: (s: Settlement) => void;
  #reject!: (e: unknown) => void;

  /** @internal Made by `meteredChat`, `meteredResponses` and `meteredMessages`. */
  constructor(upstream: AsyncIterable<Chunk>, metering: StreamMetering) {
    this.#upstream = upstream;
    this.#m = metering;
    this.settled = new Promise<Settlement>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // Awaiting `settled` is optional; errors also surface through the iteration.
    this.settled.catch(() => {});
  }

  /** The reservation this stream is metered against. */
  get reservationId(): string {
    return this.#m.hold.reservationId;
  }

  [Symbol.asyncIterator](): AsyncIterator<Chunk> {
    if (this.#iterator) throw new TypeError("A MeteredStream can be iterated only once.");
    this.#iterator = this.#upstream[Symbol.asyncIterator]();
    return {
      next: () => this.#next(),
      return: async () => {
        await this.abort();
        return { done: true, value: undefined };
      },
    };
  }

  /**
   * Stops the stream: aborts the upstream request, ends the iteration, and commits the input
   * plus the output produced so far. Safe to call at any time and more than once.
   */
  abort(reason?: unknown): Promise<Settlement> {
    if (!this.#done) {
      this.#done = true;
      this.#stopped = true;
      this.#m.abortUpstream(reason);
      // An upstream generator parked in a stalled read would queue return() behind it: don't wait.
      void Promise.resolve(this.#iterator?.return?.()).catch(() => {});
      void this.#settle(this.#usageEnding(true));
    }
    return this.settled;
  }

  async #next(): Promise<IteratorResult<Chunk>> {
    if (this.#done || !this.#iterator) return { done: true, value: undefined };
    let r: IteratorResult<Chunk>;
    try {
      r = await this.#iterator.next();
    } catch (err) {
      if (this.#stopped) return this.#finishStopped();
      this.#done = true;
      // Output already streamed to the user is charged; a failure before any output is not.
      const reader = this.#m.reader;
      const ending: Ending = reader.produced || reader.usage ? this.#usageEnding(true) : { kind: "release" };
      await this.#settle(ending).catch(() => {});
      throw err;
    }
    if (this.#stopped) return this.#finishStopped();
    if (r.done) {
      this.#done = true;
      // A failure the provider sent as an event, before any output, charges nothing.
      const reader = this.#m.reader;
      await this.#settle(reader.failed && !reader.produced && !reader.usage ? { kind: "release" } : this.#usageEnding(false));
      return { done: true, value: undefined };
    }
    this.#m.reader.addChunk(r.value);
    return r;
  }

  async #finishStopped(): Promise<IteratorResult<Chunk>> {
    await this.settled;
    return { done: true, value: undefined };
  }

  #usageEnding(partial: boolean): Ending {
    return usageEnding(this.#m.reader, this.#m.hold.bound.inputTokens, this.#m.countOutput, partial);
  }

  #settle(ending: Ending): Promise<Settlement> {
    const p = this.#m.hold.settle(ending);
    p.then(this.#resolve, this.#reject);
    return p;
  }
}
