import type { TokenUsage } from "../core/types.js";
import { OutputText, type ReplyReader } from "./replyReader.js";

/** The usage block of an OpenAI-style completion or final stream chunk. */
interface OpenAIUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number | null } | null;
  completion_tokens_details?: { reasoning_tokens?: number | null } | null;
}

/** The provider's reported usage, or `undefined` when it reported none. */
export function usageOf(body: unknown): TokenUsage | undefined {
  const u = (body as { usage?: OpenAIUsage | null } | null)?.usage;
  if (!u || typeof u.prompt_tokens !== "number" || typeof u.completion_tokens !== "number") return undefined;
  return {
    inputTokens: u.prompt_tokens,
    cachedInputTokens: u.prompt_tokens_details?.cached_tokens ?? 0,
    outputTokens: u.completion_tokens,
  };
}

interface DeltaLike {
  content?: string | null;
  refusal?: string | null;
  reasoning_content?: string | null;
  reasoning?: string | null;
  tool_calls?: Array<{ function?: { name?: string | null; arguments?: string | null } | null }> | null;
  function_call?: { name?: string | null; arguments?: string | null } | null;
}

/**
 * Reads a chat completion (OpenAI Chat Completions shape): the text it produced, per choice,
 * so that output the provider did not report (a stopped stream, omitted usage) can be counted
 * with the tokenizer, and the usage block.
 */
export class ChatOutput implements ReplyReader {
  readonly #text = new OutputText();
  #usage: TokenUsage | undefined;

  /** True once any content, refusal, reasoning or tool-call text arrived. */
  get produced(): boolean {
    return this.#text.produced;
  }

  get usage(): TokenUsage | undefined {
    return this.#usage;
  }

  /** Chat completions report input and output together, at the end. */
  get input(): undefined {
    return undefined;
  }

  /** Chat streams have no end mark besides `[DONE]`, which the client consumes. */
  get complete(): undefined {
    return undefined;
  }

  /** Adds one streamed chunk (`choices[].delta`, or the final `usage` chunk). */
  addChunk(chunk: unknown): void {
    this.#usage = usageOf(chunk) ?? this.#usage;
    const choices = (chunk as { choices?: Array<{ index?: number; delta?: DeltaLike | null }> } | null)?.choices;
    if (!Array.isArray(choices)) return;
    for (const choice of choices) if (choice?.delta) this.#add(choice.index ?? 0, choice.delta);
  }

  /** Adds a whole completion (`choices[].message` and `usage`). */
  addReply(completion: unknown): void {
    this.#usage = usageOf(completion) ?? this.#usage;
    const choices = (completion as { choices?: Array<{ index?: number; message?: DeltaLike | null }> } | null)?.choices;
    if (!Array.isArray(choices)) return;
    for (const choice of choices) if (choice?.message) this.#add(choice.index ?? 0, choice.message);
  }

  /** Output tokens under `count`: each choice's text counted as a whole. */
  count(count: (text: string) => number): number {
    return this.#text.count(count);
  }

  #add(index: number, d: DeltaLike): void {
    this.#text.add(index, d.content, d.refusal, d.reasoning_content, d.reasoning);
    const calls = [...(Array.isArray(d.tool_calls) ? d.tool_calls : []), ...(d.function_call ? [{ function: d.function_call }] : [])];
    for (const call of calls) this.#text.add(index, call?.function?.name, call?.function?.arguments);
  }
}
