import { startSseStandin, words, type SseScenario, type SseStandin } from "./sse-standin.js";

/** How the Anthropic stand-in answers one request. */
export interface AnthropicScenario extends SseScenario {
  /**
   * The usage reported. `input_tokens` excludes cache reads and writes, as Anthropic's does.
   * Default: 20 input, 10 output tokens.
   */
  usage?: {
    input_tokens: number;
    output_tokens: number;
    cache_read_input_tokens?: number;
    /** 5-minute writes. */
    cache_write_5m?: number;
    /** 1-hour writes. */
    cache_write_1h?: number;
    thinking_tokens?: number;
  };
  /** Streaming: repeat the input counts in `message_delta` (as newer API versions do). Default false: output only. */
  deltaInput?: boolean;
}

export type AnthropicStandin = SseStandin<AnthropicScenario> & {
  /** Base URL for `new Anthropic({ baseURL })`. */
  baseURL: string;
};

const DEFAULT_TEXT = "Hello from the stand-in model.";

/**
 * A local Anthropic Messages API (`POST /v1/messages`): a `Message`, or with `stream: true` the
 * events `message_start` (input usage), `content_block_start`, `ping`, `content_block_delta`…,
 * `content_block_stop`, `message_delta` (cumulative usage), `message_stop` as Server-Sent
 * Events with `event:` lines; failures as Anthropic's `error` event or error body.
 */
export async function startAnthropicStandin(): Promise<AnthropicStandin> {
  let n = 0;
  const standin = await startSseStandin<AnthropicScenario>("/v1/messages", async (body, scenario, out, record) => {
    if (scenario.failStatus) {
      out.json(scenario.failStatus, { type: "error", error: { type: "api_error", message: "stand-in failure" } });
      return;
    }
    const text = scenario.text ?? DEFAULT_TEXT;
    const u = scenario.usage ?? { input_tokens: 20, output_tokens: 10 };
    const w5 = u.cache_write_5m ?? 0;
    const w1 = u.cache_write_1h ?? 0;
    const inputUsage = {
      input_tokens: u.input_tokens,
      cache_creation_input_tokens: w5 + w1,
      cache_read_input_tokens: u.cache_read_input_tokens ?? 0,
      cache_creation: { ephemeral_5m_input_tokens: w5, ephemeral_1h_input_tokens: w1 },
    };
    const outputDetails = u.thinking_tokens !== undefined ? { output_tokens_details: { thinking_tokens: u.thinking_tokens } } : {};
    const message = (content: unknown[], output: number, stop: string | null) => ({
      id: `msg_standin_${++n}`,
      type: "message",
      role: "assistant",
      model: body.model,
      content,
      stop_reason: stop,
      stop_sequence: null,
      usage: { ...inputUsage, output_tokens: output, service_tier: "standard", ...outputDetails },
    });

    if (!body.stream) {
      out.json(200, message([{ type: "text", text, citations: null }], u.output_tokens, "end_turn"));
      return;
    }
    await out.event("message_start", { type: "message_start", message: message([], 1, null) });
    await out.event("content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "", citations: null } });
    await out.event("ping", { type: "ping" });
    for (const word of words(text)) {
      if (scenario.errorEventAfterChunks !== undefined && record.chunksSent >= scenario.errorEventAfterChunks) {
        await out.event("error", { type: "error", error: { type: "overloaded_error", message: "Overloaded" } });
        out.end();
        return;
      }
      if (!(await out.delta("content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: word } }))) return;
    }
    await out.event("content_block_stop", { type: "content_block_stop", index: 0 });
    await out.event("message_delta", {
      type: "message_delta",
      delta: { stop_reason: "end_turn", stop_sequence: null },
      usage: { ...(scenario.deltaInput ? inputUsage : {}), output_tokens: u.output_tokens, ...outputDetails },
    });
    await out.event("message_stop", { type: "message_stop" });
    out.end();
  });
  return Object.assign(standin, { baseURL: standin.origin });
}
