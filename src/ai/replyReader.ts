import type { ProviderUsage } from "../core/pricing.js";
import type { Ending } from "./hold.js";

/**
 * @internal Reads one provider's replies for metering: the output produced (to count what the
 * provider did not report) and the usage it reported. One per call; a wrapper per API shape
 * (chat completions, Responses, Anthropic Messages) supplies its own.
 */
export interface ReplyReader {
  /** Reads one streamed chunk or event. */
  addChunk(chunk: unknown): void;
  /** Reads a whole, non-streamed reply. */
  addReply(reply: unknown): void;
  /** True once any output (text, refusal, reasoning, tool call) arrived. */
  readonly produced: boolean;
  /** The provider's usage for the whole call, once reported. */
  readonly usage: ProviderUsage | undefined;
  /** The input counts the provider reported before the end (Anthropic's `message_start`), if any. */
  readonly input: Omit<ProviderUsage, "outputTokens" | "reasoningTokens"> | undefined;
  /** `false` while a stream that marks its end has not reached it; `undefined` when the shape has no end mark. */
  readonly complete: boolean | undefined;
  /** True when the provider reported a failure as an event rather than an error (Responses `error`, `response.failed`). */
  readonly failed?: boolean;
  /** Output tokens under `count`, each choice's text counted as a whole. */
  count(count: (text: string) => number): number;
}

/**
 * How a call ends: the provider's usage when it reported one, else the input (as reported, or
 * as estimated for the hold) plus the output produced so far, counted.
 */
export function usageEnding(reader: ReplyReader, estimatedInput: number, countOutput: (text: string) => number, partial: boolean): Ending {
  const stopped = partial || reader.complete === false;
  if (reader.usage) return { kind: "usage", usage: reader.usage, source: "provider", partial: stopped };
  const input = reader.input ?? { inputTokens: estimatedInput, cachedInputTokens: 0 };
  return { kind: "usage", usage: { ...input, outputTokens: reader.count(countOutput) }, source: "counted", partial: stopped };
}

/** Appends text pieces per output index; tracks whether any arrived. */
export class OutputText {
  readonly #parts = new Map<number, string[]>();
  #any = false;

  get produced(): boolean {
    return this.#any;
  }

  add(index: number, ...texts: unknown[]): void {
    const parts = this.#parts.get(index) ?? [];
    for (const text of texts) {
      if (typeof text === "string" && text) {
        parts.push(text);
        this.#any = true;
      }
    }
    this.#parts.set(index, parts);
  }

  count(count: (text: string) => number): number {
    let total = 0;
    for (const parts of this.#parts.values()) total += count(parts.join(""));
    return total;
  }
}
