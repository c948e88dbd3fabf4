import type { ProviderUsage } from "../core/pricing.js";
import { OutputText, type ReplyReader } from "./replyReader.js";

/** The usage block of an OpenAI Responses API response. */
interface ResponsesUsage {
  input_tokens?: number;
  input_tokens_details?: { cached_tokens?: number | null; cache_write_tokens?: number | null } | null;
  output_tokens?: number;
  output_tokens_details?: { reasoning_tokens?: number | null } | null;
}

interface ItemLike {
  type?: string;
  name?: string;
  arguments?: string;
  input?: string;
  content?: Array<{ type?: string; text?: string; refusal?: string }> | null;
  summary?: Array<{ text?: string }> | null;
}

/** Events that end a Responses stream and carry the final response (and its usage). */
const TERMINAL = new Set(["response.completed", "response.incomplete", "response.failed"]);

/** Events whose `delta` is model output. */
const OUTPUT_DELTAS = new Set([
  "response.output_text.delta",
  "response.refusal.delta",
  "response.function_call_arguments.delta",
  "response.custom_tool_call_input.delta",
  "response.reasoning_text.delta",
  "response.reasoning_summary_text.delta",
]);

/**
 * The provider's usage from a Responses API `usage` block. `input_tokens` includes the cached
 * tokens and `output_tokens` the reasoning tokens, so both details are parts, never added on.
 */
export function responsesUsageOf(body: unknown): ProviderUsage | undefined {
  const u = (body as { usage?: ResponsesUsage | null } | null)?.usage;
  if (!u || typeof u.input_tokens !== "number" || typeof u.output_tokens !== "number") return undefined;
  return {
    inputTokens: u.input_tokens,
    cachedInputTokens: u.input_tokens_details?.cached_tokens ?? 0,
    cacheWriteTokens: u.input_tokens_details?.cache_write_tokens ?? 0,
    outputTokens: u.output_tokens,
    reasoningTokens: u.output_tokens_details?.reasoning_tokens ?? 0,
  };
}

/**
 * Reads OpenAI Responses API replies: the streamed events (`response.output_text.delta`, …,
 * `response.completed`) or a whole `Response`, collecting output text per output item and the
 * usage of the final response.
 */
export class ResponsesOutput implements ReplyReader {
  readonly #text = new OutputText();
  #usage: ProviderUsage | undefined;
  #ended = false;
  #failed = false;

  get produced(): boolean {
    return this.#text.produced;
  }

  get usage(): ProviderUsage | undefined {
    return this.#usage;
  }

  /** Responses report input and output together, in the final response. */
  get input(): undefined {
    return undefined;
  }

  get complete(): boolean {
    return this.#ended;
  }

  get failed(): boolean {
    return this.#failed;
  }

  addChunk(chunk: unknown): void {
    const event = chunk as { type?: string; delta?: unknown; output_index?: number; item?: ItemLike; response?: unknown } | null;
    const type = event?.type;
    if (!type) return;
    if (OUTPUT_DELTAS.has(type)) {
      this.#text.add(event.output_index ?? 0, event.delta);
    } else if (type === "response.output_item.added" && event.item) {
      // A function call's name arrives with its item; its arguments follow as deltas.
      if (event.item.type === "function_call" || event.item.type === "custom_tool_call") this.#text.add(event.output_index ?? 0, event.item.name);
    } else if (TERMINAL.has(type)) {
      this.#ended = true;
      this.#usage = responsesUsageOf(event.response) ?? this.#usage;
      if (type === "response.failed") this.#failed = true;
    } else if (type === "error") {
      this.#failed = true;
    }
  }

  addReply(reply: unknown): void {
    this.#usage = responsesUsageOf(reply) ?? this.#usage;
    this.#ended = true;
    const output = (reply as { output?: ItemLike[] | null } | null)?.output;
    if (!Array.isArray(output)) return;
    output.forEach((item, index) => {
      if (!item) return;
      if (item.type === "function_call" || item.type === "custom_tool_call") this.#text.add(index, item.name, item.arguments ?? item.input);
      for (const part of item.content ?? []) this.#text.add(index, part?.text, part?.refusal);
      for (const part of item.summary ?? []) this.#text.add(index, part?.text);
    });
  }

  count(count: (text: string) => number): number {
    return this.#text.count(count);
  }
}
