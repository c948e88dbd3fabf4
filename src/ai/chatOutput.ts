import type { TokenUsage } from "../core/types.js";

/** The usage block of an OpenAI-style completion or final stream chunk. */
interface OpenAIUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number | null } | null;
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
 * Collects the text a chat completion produced, per choice, so that output the provider did not
 * report (a stopped stream, omitted usage) can be counted with the tokenizer.
 */
export class ChatOutput {
  readonly #choices = new Map<number, string[]>();
  #any = false;

  /** True once any content, refusal, reasoning or tool-call text arrived. */
  get produced(): boolean {
    return this.#any;
  }

  /** Adds one streamed chunk (`choices[].delta`). */
  addChunk(chunk: unknown): void {
    const choices = (chunk as { choices?: Array<{ index?: number; delta?: DeltaLike | null }> } | null)?.choices;
    if (!Array.isArray(choices)) return;
    for (const choice of choices) if (choice?.delta) this.#add(choice.index ?? 0, choice.delta);
  }

  /** Adds a whole completion (`choices[].message`). */
  addCompletion(completion: unknown): void {
    const choices = (completion as { choices?: Array<{ index?: number; message?: DeltaLike | null }> } | null)?.choices;
    if (!Array.isArray(choices)) return;
    for (const choice of choices) if (choice?.message) this.#add(choice.index ?? 0, choice.message);
  }

  /** Output tokens under `count`: each choice's text counted as a whole. */
  count(count: (text: string) => number): number {
    let total = 0;
    for (const parts of this.#choices.values()) total += count(parts.join(""));
    return total;
  }

  #add(index: number, d: DeltaLike): void {
    const parts = this.#choices.get(index) ?? [];
    const before = parts.length;
    for (const text of [d.content, d.refusal, d.reasoning_content, d.reasoning]) if (typeof text === "string" && text) parts.push(text);
    const calls = [...(Array.isArray(d.tool_calls) ? d.tool_calls : []), ...(d.function_call ? [{ function: d.function_call }] : [])];
    for (const call of calls) {
      if (call?.function?.name) parts.push(call.function.name);
      if (call?.function?.arguments) parts.push(call.function.arguments);
    }
    if (parts.length > before) this.#any = true;
    this.#choices.set(index, parts);
  }
}
