import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { countTokens } from "gpt-tokenizer/encoding/o200k_base";

/** How the stand-in answers one request. */
export interface StandinScenario {
  /** The reply, streamed one word (with its leading space) per chunk. Default "Hello from the stand-in model.". */
  text?: string;
  /**
   * The usage reported: explicit counts, `"omit"` (no usage at all, even when asked), or
   * `"auto"` (completion = o200k count of the reply, prompt = o200k count of the message
   * contents). Default `"auto"`.
   */
  usage?: { prompt_tokens: number; completion_tokens: number; cached_tokens?: number } | "omit" | "auto";
  /** Answer with this HTTP status and an OpenAI error body instead of a completion. */
  failStatus?: number;
  /** Streaming: destroy the connection after this many content chunks. */
  failAfterChunks?: number;
  /** Streaming: stop sending (keep the connection open) after this many content chunks. */
  stallAfterChunks?: number;
  /** Milliseconds to wait before answering at all. Default 0. */
  delayMs?: number;
  /** Milliseconds between streamed chunks. Default 0. */
  chunkDelayMs?: number;
}

/** One request the stand-in received. */
export interface StandinRequest {
  body: Record<string, unknown>;
  /** True when the client closed the connection before the answer was complete. */
  closedEarly: boolean;
  /** Content chunks written before the answer ended or the client left. */
  chunksSent: number;
}

export interface OpenAIStandin {
  /** Base URL for OpenAI-compatible clients: `http://127.0.0.1:<port>/v1`. */
  baseURL: string;
  /** Every request, in order. */
  requests: StandinRequest[];
  /** Queues scenarios for the next requests, one each; afterwards the default applies. */
  script(...scenarios: StandinScenario[]): void;
  /** Sets the scenario used when the queue is empty. */
  setDefault(scenario: StandinScenario): void;
  close(): Promise<void>;
}

const DEFAULT_TEXT = "Hello from the stand-in model.";

/** A local OpenAI-compatible `/v1/chat/completions` on 127.0.0.1 and a free port. */
export async function startOpenAIStandin(initial: StandinScenario = {}): Promise<OpenAIStandin> {
  const queue: StandinScenario[] = [];
  let fallback = initial;
  const requests: StandinRequest[] = [];
  const open = new Set<ServerResponse>();

  const server = createServer((req, res) => {
    void handle(req, res).catch(() => res.destroy());
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== "POST" || !req.url?.endsWith("/chat/completions")) {
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: "not found" } }));
      return;
    }
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
    const record: StandinRequest = { body, closedEarly: false, chunksSent: 0 };
    requests.push(record);
    const scenario = queue.shift() ?? fallback;
    let finished = false;
    res.on("close", () => {
      open.delete(res);
      if (!finished) record.closedEarly = true;
    });
    open.add(res);

    if (scenario.delayMs) await new Promise((r) => setTimeout(r, scenario.delayMs));
    if (scenario.failStatus) {
      finished = true;
      res.writeHead(scenario.failStatus, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: "stand-in failure", type: "server_error", code: "standin_failure" } }));
      return;
    }

    const text = scenario.text ?? DEFAULT_TEXT;
    const usage = usageFor(scenario, body, text);
    const id = "chatcmpl-standin-" + requests.length;
    const created = Math.floor(Date.now() / 1000);
    const model = String(body.model);

    if (!body.stream) {
      finished = true;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          id,
          object: "chat.completion",
          created,
          model,
          choices: [{ index: 0, message: { role: "assistant", content: text, refusal: null }, finish_reason: "stop", logprobs: null }],
          ...(usage ? { usage } : {}),
        }),
      );
      return;
    }

    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    res.flushHeaders();
    const send = (data: unknown) => res.write(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
    const chunk = (delta: Record<string, unknown>, finish: string | null = null) => ({
      id,
      object: "chat.completion.chunk",
      created,
      model,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
    });
    send(chunk({ role: "assistant", content: "" }));
    const words = text.match(/\s*\S+/g) ?? [];
    for (const word of words) {
      if (res.destroyed) return;
      if (scenario.failAfterChunks !== undefined && record.chunksSent >= scenario.failAfterChunks) {
        // Let what was written reach the client, then cut the connection mid-answer.
        await new Promise((r) => setTimeout(r, 30));
        res.destroy();
        return;
      }
      if (scenario.stallAfterChunks !== undefined && record.chunksSent >= scenario.stallAfterChunks) return; // left open until the client leaves
      if (scenario.chunkDelayMs) await new Promise((r) => setTimeout(r, scenario.chunkDelayMs));
      if (res.destroyed) return;
      send(chunk({ content: word }));
      record.chunksSent++;
    }
    send(chunk({}, "stop"));
    const wantsUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
    if (usage && wantsUsage) send({ id, object: "chat.completion.chunk", created, model, choices: [], usage });
    send("[DONE]");
    finished = true;
    res.end();
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    requests,
    script: (...scenarios) => void queue.push(...scenarios),
    setDefault: (scenario) => void (fallback = scenario),
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of open) res.destroy();
        server.close(() => resolve());
      }),
  };
}

function usageFor(scenario: StandinScenario, body: Record<string, unknown>, text: string) {
  const u = scenario.usage ?? "auto";
  if (u === "omit") return undefined;
  if (u === "auto") {
    const messages = (body.messages as Array<{ content?: unknown }> | undefined) ?? [];
    const prompt = messages.reduce((n, m) => n + 4 + (typeof m.content === "string" ? countTokens(m.content) : 0), 3);
    const completion = countTokens(text);
    return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: 0 } };
  }
  return {
    prompt_tokens: u.prompt_tokens,
    completion_tokens: u.completion_tokens,
    total_tokens: u.prompt_tokens + u.completion_tokens,
    prompt_tokens_details: { cached_tokens: u.cached_tokens ?? 0 },
  };
}
