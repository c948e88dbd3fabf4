import { MeterError } from "../core/errors.js";
import type { MeterApi } from "../core/types.js";
import type { ChatCallContext, MeteredChatOptions, MeteredChatResult } from "./meteredChat.js";
import { ResponsesOutput } from "./responsesOutput.js";
import { runMetered } from "./runMetered.js";
import { upperBound } from "./upperBound.js";
import type { ChatMessageLike, ChatRole } from "./types.js";

/** The fields of an OpenAI Responses API request that metering reads (any superset passes through). */
export interface ResponsesParamsLike {
  model: string;
  /** A string, or input items (messages, function calls and their outputs, …). */
  input?: string | readonly unknown[] | null;
  instructions?: string | null;
  max_output_tokens?: number | null;
  stream?: boolean | null;
  tools?: readonly unknown[] | null;
}

/** Options of {@link meteredResponses}. */
export interface MeteredResponsesOptions extends Omit<MeteredChatOptions, "maxTokensParam"> {}

/**
 * One metered OpenAI Responses API call (`client.responses.create`, plain or `stream: true`,
 * or `client.responses.stream`): reserves the estimated input plus `max_output_tokens` (a
 * denial throws `LimitReachedError`), runs `call`, commits the usage of the final response —
 * cached input at the cache price, reasoning tokens as the output tokens they are, counted
 * once — and refunds the rest, or releases the hold when the call fails before any output.
 *
 * A stream resolves to a {@link MeteredStream} of the provider's events: the
 * `response.completed` (or `response.incomplete`) event's usage is committed; stopping early
 * commits the input estimate plus the output streamed so far, counted with the tokenizer.
 *
 * The estimate sees only this request: with `previous_response_id` or `conversation` the
 * stored context is billed by the provider but not held, and shows up as overage.
 *
 * @example
 * const response = await meteredResponses(meter, userId, { model: "gpt-5", input: "Hello", max_output_tokens: 500 },
 *   (params, { signal }) => openai.responses.create(params, { signal }));
 */
export async function meteredResponses<P extends ResponsesParamsLike, R>(
  meter: MeterApi,
  userId: string,
  params: P,
  call: (params: P, context: ChatCallContext) => R | PromiseLike<R>,
  options: MeteredResponsesOptions = {},
): Promise<MeteredChatResult<Awaited<R>>> {
  return (await runMetered({
    meter,
    userId,
    options,
    call,
    reader: () => new ResponsesOutput(),
    prepare: (estimate) => {
      // 1. The request as sent: always with an output limit (reasoning tokens count against it).
      if (!params || typeof params !== "object" || typeof params.model !== "string") {
        throw new MeterError("invalid_request", "params must be a Responses API request with a model.", { field: "params" });
      }
      const request: P = { ...params };
      if (params.max_output_tokens === undefined || params.max_output_tokens === null) {
        if (options.maxTokens === undefined) {
          throw new MeterError(
            "invalid_request",
            "The request has no max_output_tokens, so its cost has no upper bound. Set max_output_tokens, or pass the maxTokens option.",
            { field: "max_output_tokens" },
          );
        }
        request.max_output_tokens = options.maxTokens;
      }
      // 2. The bound: the instructions and input items counted as chat messages, plus the output limit.
      const bound = upperBound({
        ...estimate,
        messages: responsesMessages(request),
        model: request.model,
        maxTokens: request.max_output_tokens as number,
        tools: request.tools ?? null,
      });
      return { request, bound, model: request.model };
    },
  })) as MeteredChatResult<Awaited<R>>;
}

const ROLES = new Set<string>(["system", "developer", "user", "assistant"]);

/** The instructions and input of a Responses request in the chat shape `estimateChatTokens` counts. */
export function responsesMessages(request: Pick<ResponsesParamsLike, "input" | "instructions">): ChatMessageLike[] {
  const out: ChatMessageLike[] = [];
  if (typeof request.instructions === "string" && request.instructions) out.push({ role: "system", content: request.instructions });
  const input = request.input;
  if (typeof input === "string") out.push({ role: "user", content: input });
  else if (Array.isArray(input)) for (const item of input) out.push(itemMessage(item));
  return out;
}

function itemMessage(item: unknown): ChatMessageLike {
  const i = (item ?? {}) as { type?: unknown; role?: unknown; content?: unknown; name?: unknown; arguments?: unknown; call_id?: unknown; output?: unknown };
  if (typeof i.role === "string" && ROLES.has(i.role) && (i.type === undefined || i.type === "message")) {
    return { role: i.role as ChatRole, content: i.content };
  }
  if (i.type === "function_call") {
    return { role: "assistant", content: null, tool_calls: [{ id: i.call_id, function: { name: i.name, arguments: i.arguments } }] };
  }
  if (i.type === "function_call_output") {
    return { role: "tool", content: typeof i.output === "string" ? i.output : JSON.stringify(i.output ?? null), ...(typeof i.call_id === "string" ? { tool_call_id: i.call_id } : {}) };
  }
  // Reasoning items, tool outputs of built-in tools, item references: their JSON bounds the text.
  return { role: "user", content: JSON.stringify(item) };
}
