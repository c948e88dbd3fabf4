import { startSseStandin, words, type SseScenario, type SseStandin } from "./sse-standin.js";

/** How the Responses stand-in answers one request. */
export interface ResponsesScenario extends SseScenario {
  /** The usage of the final response, or `"omit"` (null usage). Default: 20 input, 10 output tokens. */
  usage?: { input_tokens: number; output_tokens: number; cached_tokens?: number; cache_write_tokens?: number; reasoning_tokens?: number } | "omit";
  /** Streaming: end with `response.incomplete` (the output limit was hit) instead of `response.completed`. */
  incomplete?: boolean;
}

export type ResponsesStandin = SseStandin<ResponsesScenario> & {
  /** Base URL for `new OpenAI({ baseURL })`. */
  baseURL: string;
};

const DEFAULT_TEXT = "Hello from the stand-in model.";

/**
 * A local OpenAI Responses API (`POST /v1/responses`): a `Response` object, or with
 * `stream: true` the event sequence `response.created`, `response.in_progress`,
 * `response.output_item.added`, `response.content_part.added`, `response.output_text.delta`…,
 * `response.output_text.done`, `response.content_part.done`, `response.output_item.done`,
 * `response.completed` as Server-Sent Events with `event:` lines.
 */
export async function startResponsesStandin(): Promise<ResponsesStandin> {
  let n = 0;
  const standin = await startSseStandin<ResponsesScenario>("/v1/responses", async (body, scenario, out, record) => {
    if (scenario.failStatus) {
      out.json(scenario.failStatus, { error: { message: "stand-in failure", type: "server_error", param: null, code: "standin_failure" } });
      return;
    }
    const id = `resp_standin_${++n}`;
    const itemId = `msg_standin_${n}`;
    const text = scenario.text ?? DEFAULT_TEXT;
    const u = scenario.usage ?? { input_tokens: 20, output_tokens: 10 };
    const usage =
      u === "omit"
        ? null
        : {
            input_tokens: u.input_tokens,
            input_tokens_details: { cached_tokens: u.cached_tokens ?? 0, cache_write_tokens: u.cache_write_tokens ?? 0 },
            output_tokens: u.output_tokens,
            output_tokens_details: { reasoning_tokens: u.reasoning_tokens ?? 0 },
            total_tokens: u.input_tokens + u.output_tokens,
          };
    const message = (content: string, status: string) => ({
      id: itemId,
      type: "message",
      status,
      role: "assistant",
      content: content === "" && status === "in_progress" ? [] : [{ type: "output_text", text: content, annotations: [] }],
    });
    const response = (status: string, output: unknown[], withUsage: boolean) => ({
      id,
      object: "response",
      created_at: Math.floor(Date.now() / 1000),
      status,
      error: null,
      incomplete_details: status === "incomplete" ? { reason: "max_output_tokens" } : null,
      instructions: body.instructions ?? null,
      max_output_tokens: body.max_output_tokens ?? null,
      model: body.model,
      output,
      parallel_tool_calls: true,
      temperature: 1,
      tool_choice: "auto",
      tools: [],
      top_p: 1,
      usage: withUsage ? usage : null,
    });

    if (!body.stream) {
      out.json(200, response("completed", [message(text, "completed")], true));
      return;
    }
    let seq = 0;
    const ev = (type: string, data: Record<string, unknown>) => out.event(type, { type, sequence_number: seq++, ...data });
    await ev("response.created", { response: response("in_progress", [], false) });
    await ev("response.in_progress", { response: response("in_progress", [], false) });
    await ev("response.output_item.added", { output_index: 0, item: message("", "in_progress") });
    await ev("response.content_part.added", { item_id: itemId, output_index: 0, content_index: 0, part: { type: "output_text", text: "", annotations: [] } });
    for (const word of words(text)) {
      if (scenario.errorEventAfterChunks !== undefined && record.chunksSent >= scenario.errorEventAfterChunks) {
        await ev("error", { code: "server_error", message: "The stand-in failed mid-stream.", param: null });
        out.end();
        return;
      }
      const sent = await out.delta("response.output_text.delta", {
        type: "response.output_text.delta",
        sequence_number: seq++,
        item_id: itemId,
        output_index: 0,
        content_index: 0,
        delta: word,
        logprobs: [],
      });
      if (!sent) return;
    }
    await ev("response.output_text.done", { item_id: itemId, output_index: 0, content_index: 0, text, logprobs: [] });
    await ev("response.content_part.done", { item_id: itemId, output_index: 0, content_index: 0, part: { type: "output_text", text, annotations: [] } });
    await ev("response.output_item.done", { output_index: 0, item: message(text, "completed") });
    const final = scenario.incomplete ? "response.incomplete" : "response.completed";
    await ev(final, { response: response(scenario.incomplete ? "incomplete" : "completed", [message(text, "completed")], true) });
    out.end();
  });
  return Object.assign(standin, { baseURL: `${standin.origin}/v1` });
}
