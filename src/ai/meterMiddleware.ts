import type { LanguageModelMiddleware } from "ai";
import { assertId } from "../core/amounts.js";
import { MeterError } from "../core/errors.js";
import type { ProviderUsage } from "../core/pricing.js";
import type { MeterApi } from "../core/types.js";
import { countTokens } from "./countTokens.js";
import { Hold, type Ending } from "./hold.js";
import { meteringSettings } from "./meteringSettings.js";
import type { MeteringOptions } from "./meteredChat.js";
import { upperBound } from "./upperBound.js";
import type { ChatMessageLike, Settlement } from "./types.js";

type WrapStreamArgs = Parameters<NonNullable<LanguageModelMiddleware["wrapStream"]>>[0];
type CallOptions = WrapStreamArgs["params"];
type LanguageModel = WrapStreamArgs["model"];
type StreamResult = Awaited<ReturnType<WrapStreamArgs["doStream"]>>;
type StreamPart = StreamResult["stream"] extends ReadableStream<infer T> ? T : never;
type GenerateResult = Awaited<ReturnType<Parameters<NonNullable<LanguageModelMiddleware["wrapGenerate"]>>[0]["doGenerate"]>>;
type ModelUsage = GenerateResult["usage"];

/** Options of {@link meterMiddleware}. */
export interface MeterMiddlewareOptions extends MeteringOptions {
  /** Who is charged: a user id, or a function of the call (e.g. reading `providerOptions`). Required. */
  userId: string | ((call: { params: CallOptions; model: LanguageModel }) => string);
  /** The model id used for tokenizer and price. Default: the wrapped model's `modelId`. */
  model?: string;
}

/**
 * An AI SDK (`ai` v6) language-model middleware that meters every `generateText` /
 * `streamText` call: reserves the upper bound (a denial throws `LimitReachedError`), commits
 * the usage the provider reports and refunds the rest, releases the hold when the call fails
 * before any output, and commits the input plus the output streamed so far when the stream is
 * cancelled or aborted. The settlement is attached to the result as
 * `providerMetadata.meterkit`.
 *
 * @example
 * const model = wrapLanguageModel({ model: openai("gpt-4o"), middleware: meterMiddleware(meter, { userId }) });
 */
export function meterMiddleware(meter: MeterApi, options: MeterMiddlewareOptions): LanguageModelMiddleware {
  const settings = meteringSettings(options);

  async function open(params: CallOptions, model: LanguageModel) {
    const userId = assertId(typeof options.userId === "function" ? options.userId({ params, model }) : options.userId, "userId");
    const modelId = options.model ?? model.modelId;
    const maxTokens = params.maxOutputTokens;
    if (maxTokens === undefined) {
      throw new MeterError("invalid_request", "The call has no maxOutputTokens, so its cost has no upper bound. Set maxOutputTokens, or pass the maxTokens option.", {
        field: "maxOutputTokens",
      });
    }
    const bound = upperBound({ ...settings.estimate, messages: toChatMessages(params.prompt), model: modelId, maxTokens, tools: params.tools ?? null });
    const hold = await Hold.reserve(meter, userId, bound, settings.hold);
    const countOutput = (text: string) => countTokens(text, { ...settings.estimate, model: modelId });
    return { hold, countOutput };
  }

  return {
    specificationVersion: "v3",

    // The bound needs a limit: supply the default one when the call has none.
    transformParams: async ({ params }) =>
      params.maxOutputTokens === undefined && options.maxTokens !== undefined ? { ...params, maxOutputTokens: options.maxTokens } : params,

    wrapGenerate: async ({ doGenerate, params, model }) => {
      const { hold, countOutput } = await open(params, model);
      let result: GenerateResult;
      try {
        result = await doGenerate();
      } catch (err) {
        await hold.settle({ kind: "release" }).catch(() => {});
        throw err;
      }
      const text = result.content.map(contentText).join("");
      const settlement = await hold.settle(endingOf(result.usage, hold, () => countOutput(text), false));
      return { ...result, providerMetadata: withSettlement(result.providerMetadata, settlement) };
    },

    wrapStream: async ({ doStream, params, model }) => {
      const { hold, countOutput } = await open(params, model);
      let upstream: StreamResult;
      try {
        upstream = await doStream();
      } catch (err) {
        await hold.settle({ kind: "release" }).catch(() => {});
        throw err;
      }
      const reader = upstream.stream.getReader();
      const produced: string[] = [];
      const toolInputsStreamed = new Set<string>();
      let errored = false;
      const counted = () => countOutput(produced.join(""));
      const stopped = (): Promise<Settlement> => hold.settle(endingOf(undefined, hold, counted, true));

      const stream = new ReadableStream<StreamPart>({
        async pull(controller) {
          let r: ReadableStreamReadResult<StreamPart>;
          try {
            r = await reader.read();
          } catch (err) {
            // A caller's abort is a stop (charge what was produced); a provider failure charges
            // produced output, or releases when there was none.
            if (params.abortSignal?.aborted || produced.length > 0) await stopped().catch(() => {});
            else await hold.settle({ kind: "release" }).catch(() => {});
            controller.error(err);
            return;
          }
          if (r.done) {
            // Ended without a finish part: charge what was seen.
            if (!hold.settled) await (produced.length > 0 ? stopped() : hold.settle({ kind: "release" })).catch(() => {});
            controller.close();
            return;
          }
          const part = r.value;
          switch (part.type) {
            case "text-delta":
            case "reasoning-delta":
              produced.push(part.delta);
              break;
            case "tool-input-delta":
              toolInputsStreamed.add(part.id);
              produced.push(part.delta);
              break;
            case "tool-call":
              if (!toolInputsStreamed.has(part.toolCallId)) produced.push(part.toolName, part.input);
              break;
            case "error":
              errored = true;
              break;
            case "finish": {
              const ending: Ending = errored && produced.length === 0 && !hasUsage(part.usage) ? { kind: "release" } : endingOf(part.usage, hold, counted, errored);
              try {
                const settlement = await hold.settle(ending);
                controller.enqueue({ ...part, providerMetadata: withSettlement(part.providerMetadata, settlement) });
              } catch (err) {
                controller.error(err);
              }
              return;
            }
          }
          controller.enqueue(part);
        },
        async cancel(reason) {
          // The consumer stopped reading: stop the provider and charge what was produced.
          await reader.cancel(reason).catch(() => {});
          await stopped();
        },
      });
      return { ...upstream, stream };
    },
  };
}

function hasUsage(usage: ModelUsage | undefined): boolean {
  return typeof usage?.inputTokens.total === "number" && typeof usage.outputTokens.total === "number";
}

/** The provider's usage when it reported one, else the estimated input plus the counted output. */
function endingOf(usage: ModelUsage | undefined, hold: Hold, countOutput: () => number, partial: boolean): Ending {
  if (usage && hasUsage(usage)) {
    // The AI SDK does not say how long a cache write lives: it is priced as the default (5-minute) one.
    const tokens: ProviderUsage = {
      inputTokens: usage.inputTokens.total ?? 0,
      cachedInputTokens: usage.inputTokens.cacheRead ?? 0,
      cacheWriteTokens: usage.inputTokens.cacheWrite ?? 0,
      outputTokens: usage.outputTokens.total ?? 0,
      reasoningTokens: usage.outputTokens.reasoning ?? 0,
    };
    return { kind: "usage", usage: tokens, source: "provider", partial };
  }
  return { kind: "usage", usage: { inputTokens: hold.bound.inputTokens, cachedInputTokens: 0, outputTokens: countOutput() }, source: "counted", partial };
}

function withSettlement<M extends Record<string, unknown> | undefined>(metadata: M, s: Settlement) {
  return {
    ...metadata,
    meterkit: {
      outcome: s.outcome,
      reservationId: s.reservationId,
      model: s.model,
      meterKey: s.meterKey,
      unit: s.unit,
      held: s.held,
      committed: s.committed,
      refunded: s.refunded,
      overage: s.overage,
      remaining: s.remaining,
      usageSource: s.usageSource,
      partial: s.partial,
    },
  };
}

function contentText(part: GenerateResult["content"][number]): string {
  switch (part.type) {
    case "text":
    case "reasoning":
      return part.text;
    case "tool-call":
      return part.toolName + part.input;
    default:
      return "";
  }
}

/** The AI SDK prompt in the OpenAI chat shape that `estimateChatTokens` counts. */
export function toChatMessages(prompt: CallOptions["prompt"]): ChatMessageLike[] {
  return prompt.map((message): ChatMessageLike => {
    if (message.role === "system") return { role: "system", content: message.content };
    const content: unknown[] = [];
    const toolCalls: unknown[] = [];
    for (const part of message.content) {
      switch (part.type) {
        case "text":
        case "reasoning":
          content.push({ type: "text", text: part.text });
          break;
        case "file":
          content.push(part.mediaType.startsWith("image/") ? { type: "image_url" } : { type: "file", data: fileData(part.data) });
          break;
        case "tool-call":
          toolCalls.push({ id: part.toolCallId, function: { name: part.toolName, arguments: typeof part.input === "string" ? part.input : JSON.stringify(part.input) } });
          break;
        default:
          // Tool results and approval responses: their JSON is what the model reads.
          content.push({ type: "text", text: JSON.stringify(part) });
      }
    }
    return toolCalls.length > 0 ? { role: message.role, content, tool_calls: toolCalls } : { role: message.role, content };
  });
}

function fileData(data: unknown): string {
  if (typeof data === "string") return data;
  if (data instanceof URL) return data.href;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64");
  return "";
}
