import { MeterError } from "../core/errors.js";
import type { MeterApi, PriceTable } from "../core/types.js";
import { ChatOutput } from "./chatOutput.js";
import type { MeteredStream } from "./MeteredStream.js";
import { runMetered } from "./runMetered.js";
import { upperBound } from "./upperBound.js";
import type { ChatMessageLike, MeteringUnit, Settlement } from "./types.js";

/** The fields of an OpenAI-style chat request that metering reads (any superset passes through). */
export interface ChatParamsLike {
  model: string;
  messages: readonly ChatMessageLike[];
  max_completion_tokens?: number | null;
  max_tokens?: number | null;
  n?: number | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean | null } | null;
  tools?: readonly unknown[] | null;
}

/** Options shared by {@link meteredChat} and the AI SDK middleware. */
export interface MeteringOptions {
  /** The meter key charged (its counter's unit must be `unit`). Default `"llm.tokens"`. */
  meterKey?: string;
  /**
   * Input and output on two meters, for a plan with an input and an output group: one
   * reservation holds the input estimate on `input` and the output bound on `output`, all or
   * nothing (a denial of either holds neither), and commits each side from the provider's
   * usage — input tokens, cache reads and writes included, on `input`; output tokens,
   * reasoning included, on `output` — with the overage of each recorded on its own counter.
   * With `unit: "cents"` each side is priced (give the meters `counts: "input"` and
   * `counts: "output"`). Instead of `meterKey`. Default: none — the whole bound on `meterKey`.
   */
  meterKeys?: { input: string; output: string };
  /**
   * The unit of that counter: `"tokens"` charges input + output tokens, `"cents"` charges their
   * price from `prices` (use a meter without a `price` conversion). Default `"tokens"`.
   */
  unit?: MeteringUnit;
  /** Model prices, for `cents` and to resolve model ids. Default `DEFAULT_PRICES`; keep it equal to the meter's. */
  prices?: PriceTable;
  /**
   * Output bound used when the request sets none; it is then added to the request (as
   * `max_completion_tokens`, or `maxOutputTokens` in the AI SDK) so the bound holds.
   * Default: none — a request without a token limit is refused with `invalid_request`.
   */
  maxTokens?: number;
  /** Lifetime of the hold in ms. Default: the meter's `holdTtl`. */
  ttl?: number;
  /** Reserve idempotency key (retries of the same request hold once). Default: none. */
  idempotencyKey?: string;
  /** Recorded with the hold. Default: none. */
  metadata?: Record<string, unknown>;
  /** Token counter for models whose tokenizer is not built in. Default: see `estimateChatTokens`. */
  tokenizer?: (text: string) => number;
  /** Called once with the settlement (committed, released or tracked). Default: none. */
  onSettle?: (settlement: Settlement) => void;
}

/** Options of {@link meteredChat}. */
export interface MeteredChatOptions extends MeteringOptions {
  /**
   * Aborting it stops the call: before output, the request is aborted and the hold released;
   * during a stream, the stream ends and what was produced is committed. Default: none.
   */
  signal?: AbortSignal;
  /** Which request field receives `maxTokens` when the request has no limit. Default `"max_completion_tokens"`. */
  maxTokensParam?: "max_completion_tokens" | "max_tokens";
}

/** Handed to the call: pass `signal` to the client so that a stop also cancels the request. */
export interface ChatCallContext {
  signal: AbortSignal;
}

/** A streaming call resolves to a {@link MeteredStream} of its chunks; a plain call to its completion. */
export type MeteredChatResult<R> = R extends AsyncIterable<infer Chunk> ? MeteredStream<Chunk> : R;

/**
 * One metered OpenAI-style chat call: reserves the call's upper bound (a denial throws
 * `LimitReachedError`), runs `call`, commits the provider's reported usage and refunds the
 * rest, or releases the hold when the call fails before any output.
 *
 * Streaming (`stream: true`): `stream_options.include_usage` is turned on and the result is a
 * {@link MeteredStream}. Iterating it to the end commits the final usage chunk; stopping early
 * commits the input and the output produced so far, counted with the tokenizer.
 *
 * @example
 * const completion = await meteredChat(meter, userId, { model: "gpt-4o", messages, max_tokens: 500 },
 *   (params, { signal }) => openai.chat.completions.create(params, { signal }));
 */
export async function meteredChat<P extends ChatParamsLike, R>(
  meter: MeterApi,
  userId: string,
  params: P,
  call: (params: P, context: ChatCallContext) => R | PromiseLike<R>,
  options: MeteredChatOptions = {},
): Promise<MeteredChatResult<Awaited<R>>> {
  return (await runMetered({
    meter,
    userId,
    options,
    call,
    reader: () => new ChatOutput(),
    prepare: (estimate) => {
      // The request as sent: a token limit always, usage reporting on streams; then its bound.
      const request = prepare(params, options);
      const bound = upperBound({
        ...estimate,
        messages: request.messages,
        model: request.model,
        maxTokens: (request.max_completion_tokens ?? request.max_tokens) as number,
        n: request.n ?? 1,
        tools: request.tools ?? null,
      });
      return { request, bound, model: request.model };
    },
  })) as MeteredChatResult<Awaited<R>>;
}

function prepare<P extends ChatParamsLike>(params: P, options: MeteredChatOptions): P {
  if (!params || typeof params !== "object" || !Array.isArray(params.messages)) {
    throw new MeterError("invalid_request", "params must be a chat request with a messages array.", { field: "params" });
  }
  const request: P = { ...params };
  const limit = params.max_completion_tokens ?? params.max_tokens;
  if (limit === undefined || limit === null) {
    if (options.maxTokens === undefined) {
      throw new MeterError(
        "invalid_request",
        "The request has no token limit, so its cost has no upper bound. Set max_completion_tokens (or max_tokens), or pass the maxTokens option.",
        { field: "max_completion_tokens" },
      );
    }
    (request as ChatParamsLike)[options.maxTokensParam ?? "max_completion_tokens"] = options.maxTokens;
  }
  if (params.stream) {
    (request as ChatParamsLike).stream_options = { ...params.stream_options, include_usage: true };
  }
  return request;
}
