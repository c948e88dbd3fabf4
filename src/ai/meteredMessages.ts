import { MeterError } from "../core/errors.js";
import type { MeterApi } from "../core/types.js";
import type { ChatCallContext, MeteredChatOptions, MeteredChatResult } from "./meteredChat.js";
import { MessagesOutput } from "./messagesOutput.js";
import { runMetered } from "./runMetered.js";
import { upperBound } from "./upperBound.js";
import type { ChatMessageLike, ChatRole } from "./types.js";

/** The fields of an Anthropic Messages request that metering reads (any superset passes through). */
export interface MessagesParamsLike {
  model: string;
  /** The output limit, thinking included. Required by Anthropic, so the output side of the bound is exact. */
  max_tokens?: number | null;
  /** A string, or text blocks (with `cache_control`). */
  system?: string | readonly unknown[] | null;
  messages: readonly { role: "user" | "assistant" | "system"; content: unknown }[];
  tools?: readonly unknown[] | null;
  stream?: boolean | null;
}

/** Options of {@link meteredMessages}. */
export interface MeteredMessagesOptions extends Omit<MeteredChatOptions, "maxTokensParam"> {}

/**
 * One metered Anthropic Messages call (`@anthropic-ai/sdk`: `messages.create`, plain or
 * `stream: true`, or `messages.stream`): reserves the estimated prompt plus `max_tokens` (a
 * denial throws `LimitReachedError`), runs `call`, commits the reported usage — cache reads,
 * 5-minute and 1-hour cache writes and long-context rates priced right on a `cents` counter;
 * thinking tokens are output tokens, counted once — and refunds the rest, or releases the hold
 * when the call fails before any output.
 *
 * When the request marks anything with `cache_control`, the bound prices the prompt at the
 * cache-write price (1.25× for 5 minutes, 2× for `ttl: "1h"`), since all of it may be written.
 *
 * A stream (either way of asking for one) resolves to a {@link MeteredStream} of the raw
 * events: the cumulative usage of `message_delta` is committed; stopping early commits the
 * input reported by `message_start` plus the output streamed so far, counted.
 *
 * @example
 * const message = await meteredMessages(meter, userId, { model: "claude-sonnet-4-5", max_tokens: 1024, messages },
 *   (params, { signal }) => anthropic.messages.create(params, { signal }));
 */
export async function meteredMessages<P extends MessagesParamsLike, R>(
  meter: MeterApi,
  userId: string,
  params: P,
  call: (params: P, context: ChatCallContext) => R | PromiseLike<R>,
  options: MeteredMessagesOptions = {},
): Promise<MeteredChatResult<Awaited<R>>> {
  return (await runMetered({
    meter,
    userId,
    options,
    call,
    reader: () => new MessagesOutput(),
    prepare: (estimate) => {
      // 1. The request as sent, with its output limit.
      if (!params || typeof params !== "object" || typeof params.model !== "string" || !Array.isArray(params.messages)) {
        throw new MeterError("invalid_request", "params must be a Messages request with a model and a messages array.", { field: "params" });
      }
      const request: P = { ...params };
      if (params.max_tokens === undefined || params.max_tokens === null) {
        if (options.maxTokens === undefined) {
          throw new MeterError("invalid_request", "The request has no max_tokens, so its cost has no upper bound. Set max_tokens, or pass the maxTokens option.", {
            field: "max_tokens",
          });
        }
        request.max_tokens = options.maxTokens;
      }
      // 2. The bound: system and messages as chat messages, plus max_tokens, at the cache-write price if any.
      const cacheWrite = cacheWriteOf(request);
      const bound = upperBound({
        ...estimate,
        messages: messagesOf(request),
        model: request.model,
        maxTokens: request.max_tokens as number,
        tools: request.tools ?? null,
        ...(cacheWrite ? { cacheWrite } : {}),
      });
      return { request, bound, model: request.model };
    },
  })) as MeteredChatResult<Awaited<R>>;
}

const ROLES: Partial<Record<string, ChatRole>> = { user: "user", assistant: "assistant", system: "system" };

/** The system prompt and messages of an Anthropic request in the chat shape `estimateChatTokens` counts. */
export function messagesOf(request: Pick<MessagesParamsLike, "system" | "messages">): ChatMessageLike[] {
  const out: ChatMessageLike[] = [];
  if (typeof request.system === "string" ? request.system : Array.isArray(request.system) && request.system.length > 0) {
    out.push({ role: "system", content: request.system });
  }
  // Content blocks pass as they are: text blocks count as text, images as images, and tool
  // use, tool results, documents and thinking by their JSON, which bounds the text they carry.
  for (const m of request.messages) out.push({ role: ROLES[m.role] ?? "user", content: m.content });
  return out;
}

/** `"1h"` when any `cache_control` asks for an hour, `"5m"` when any asks for the default, else none. */
function cacheWriteOf(request: object): "5m" | "1h" | undefined {
  let found: "5m" | "1h" | undefined;
  const seen = new Set<object>();
  const walk = (value: unknown): void => {
    if (found === "1h" || value === null || typeof value !== "object" || seen.has(value)) return;
    seen.add(value);
    if (Array.isArray(value)) {
      for (const v of value) walk(v);
      return;
    }
    for (const [key, v] of Object.entries(value)) {
      if (key === "cache_control" && v && typeof v === "object") found = (v as { ttl?: unknown }).ttl === "1h" ? "1h" : (found ?? "5m");
      else walk(v);
    }
  };
  walk(request);
  return found;
}
