import type { ProviderUsage } from "../core/pricing.js";
import { OutputText, type ReplyReader } from "./replyReader.js";

/** The usage block of an Anthropic message (`message_start`) or its cumulative update (`message_delta`). */
interface AnthropicUsage {
  input_tokens?: number | null;
  output_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
  cache_creation?: { ephemeral_5m_input_tokens?: number | null; ephemeral_1h_input_tokens?: number | null } | null;
  output_tokens_details?: { thinking_tokens?: number | null } | null;
}

interface BlockLike {
  type?: string;
  text?: string;
  thinking?: string;
  name?: string;
  input?: unknown;
}

type InputUsage = Omit<ProviderUsage, "outputTokens" | "reasoningTokens">;

/**
 * The input side of an Anthropic usage block. Anthropic's `input_tokens` excludes the tokens
 * read from and written to the cache, so all three are added up to the prompt size; cache
 * writes are split by lifetime when the `cache_creation` breakdown is present, else they are
 * 5-minute writes (the default lifetime).
 */
export function anthropicInputOf(u: AnthropicUsage | null | undefined): InputUsage | undefined {
  if (!u || typeof u.input_tokens !== "number") return undefined;
  const read = u.cache_read_input_tokens ?? 0;
  const created = u.cache_creation_input_tokens ?? 0;
  const oneHour = u.cache_creation?.ephemeral_1h_input_tokens ?? 0;
  const fiveMinutes = u.cache_creation ? (u.cache_creation.ephemeral_5m_input_tokens ?? 0) : created - oneHour;
  return {
    inputTokens: u.input_tokens + read + created,
    cachedInputTokens: read,
    cacheWriteTokens: Math.max(0, fiveMinutes),
    cacheWrite1hTokens: oneHour,
  };
}

/** The provider's usage from a whole Anthropic message, or `undefined`. */
export function anthropicUsageOf(body: unknown): ProviderUsage | undefined {
  const u = (body as { usage?: AnthropicUsage | null } | null)?.usage;
  const input = anthropicInputOf(u);
  if (!input || typeof u?.output_tokens !== "number") return undefined;
  return { ...input, outputTokens: u.output_tokens, reasoningTokens: u.output_tokens_details?.thinking_tokens ?? 0 };
}

/**
 * Reads Anthropic Messages replies: the streamed events (`message_start` with the input usage,
 * `content_block_delta`s, `message_delta` with the cumulative usage, `message_stop`) or a
 * whole `Message`. Thinking tokens are output tokens in Anthropic's count: never added on.
 */
export class MessagesOutput implements ReplyReader {
  readonly #text = new OutputText();
  #input: InputUsage | undefined;
  #usage: ProviderUsage | undefined;
  #stopped = false;

  get produced(): boolean {
    return this.#text.produced;
  }

  get usage(): ProviderUsage | undefined {
    return this.#usage;
  }

  /** The input counts of `message_start`, known before any output. */
  get input(): InputUsage | undefined {
    return this.#input;
  }

  get complete(): boolean {
    return this.#stopped;
  }

  addChunk(chunk: unknown): void {
    const event = chunk as {
      type?: string;
      index?: number;
      message?: { usage?: AnthropicUsage | null };
      content_block?: BlockLike;
      delta?: { type?: string; text?: string; partial_json?: string; thinking?: string };
      usage?: AnthropicUsage | null;
    } | null;
    switch (event?.type) {
      case "message_start":
        this.#input = anthropicInputOf(event.message?.usage) ?? this.#input;
        break;
      case "content_block_start":
        if (event.content_block) this.#block(event.index ?? 0, event.content_block, false);
        break;
      case "content_block_delta": {
        const d = event.delta;
        this.#text.add(event.index ?? 0, d?.text, d?.partial_json, d?.thinking);
        break;
      }
      case "message_delta": {
        // Cumulative counts; input fields, when present, supersede message_start's.
        const u = event.usage;
        if (typeof u?.output_tokens !== "number") break;
        const input = anthropicInputOf(u.input_tokens === null || u.input_tokens === undefined ? undefined : { ...this.#rawInput(), ...stripNulls(u) }) ?? this.#input;
        if (input) this.#usage = { ...input, outputTokens: u.output_tokens, reasoningTokens: u.output_tokens_details?.thinking_tokens ?? 0 };
        break;
      }
      case "message_stop":
        this.#stopped = true;
        break;
    }
  }

  addReply(reply: unknown): void {
    this.#usage = anthropicUsageOf(reply) ?? this.#usage;
    this.#stopped = true;
    const content = (reply as { content?: BlockLike[] | null } | null)?.content;
    if (Array.isArray(content)) content.forEach((block, index) => block && this.#block(index, block, true));
  }

  count(count: (text: string) => number): number {
    return this.#text.count(count);
  }

  /** A content block: its name (tool use) and, in a whole message, its text or tool input. */
  #block(index: number, block: BlockLike, whole: boolean): void {
    if (block.type === "tool_use" || block.type === "server_tool_use") {
      this.#text.add(index, block.name);
      if (whole) this.#text.add(index, JSON.stringify(block.input ?? {}));
      return;
    }
    this.#text.add(index, block.text, block.thinking);
  }

  /** message_start's input counts in Anthropic's shape, for merging a partial message_delta. */
  #rawInput(): AnthropicUsage {
    const i = this.#input;
    if (!i) return {};
    const created = (i.cacheWriteTokens ?? 0) + (i.cacheWrite1hTokens ?? 0);
    return {
      input_tokens: i.inputTokens - (i.cachedInputTokens ?? 0) - created,
      cache_read_input_tokens: i.cachedInputTokens ?? 0,
      cache_creation_input_tokens: created,
      cache_creation: { ephemeral_5m_input_tokens: i.cacheWriteTokens ?? 0, ephemeral_1h_input_tokens: i.cacheWrite1hTokens ?? 0 },
    };
  }
}

function stripNulls(u: AnthropicUsage): AnthropicUsage {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(u)) if (v !== null && v !== undefined) out[k] = v;
  return out as AnthropicUsage;
}
