import type { Request, RequestHandler, Response } from "express";
import { MeterError, meteredChat, meteredMessages, meteredResponses, upperBound } from "../src/ai/index.js";
import type { ChatMessageLike, MeteredStream, Settlement } from "../src/ai/index.js";
import type { Meter } from "../src/server/index.js";
import { DEMO_MODEL, MAX_REPLY_TOKENS, SYSTEM_PROMPT } from "./constants.js";
import { simulatedChat, simulatedMessages, simulatedResponses, type ModelShape } from "./model.js";

/** One line of the chat route's answer (`application/x-ndjson`). */
export type ChatEvent =
  | { type: "start"; reservationId: string; held: number; promptTokens: number; maxTokens: number }
  | { type: "delta"; text: string }
  | {
      type: "done";
      finishReason: "stop" | "length";
      promptTokens: number;
      replyTokens: number;
      charged: number;
      refunded: number;
    }
  | { type: "error"; message: string };

export interface ChatRouteOptions {
  meter: Meter;
  /** Who is chatting (the demo has one user). */
  userId: (req: Request) => string;
  /** Mean milliseconds per streamed word. */
  wordMs: number;
}

const MAX_MESSAGES = 40;
const MAX_CHARS = 8000;

/**
 * `POST /api/chat` `{ messages, maxTokens }`: the metered chat. meterkit/ai reserves the prompt
 * (counted with the real tokenizer) plus `maxTokens`, the simulated model streams, and the
 * actual tokens are committed with the rest of the hold refunded. A client that goes away
 * (Stop) aborts the stream, and only the prompt and the words produced are charged. Not enough
 * balance throws `LimitReachedError`, which `meterErrorHandler()` answers with a 402.
 */
export function chatRoute({ meter, userId, wordMs }: ChatRouteOptions): RequestHandler {
  return async (req, res, next) => {
    try {
      const { messages, maxTokens, shape } = readChatRequest(req.body);
      const params = {
        model: DEMO_MODEL,
        messages: [{ role: "system" as const, content: SYSTEM_PROMPT }, ...messages],
        max_tokens: maxTokens,
        stream: true as const,
      };
      // The client leaving (Stop, a closed tab) stops the model and settles what was produced.
      const gone = new AbortController();
      res.on("close", () => {
        if (!res.writableFinished) gone.abort(new Error("The client went away."));
      });

      let settlement: Settlement | undefined;
      const options = { signal: gone.signal, metadata: { source: "demo-chat", shape }, onSettle: (s: Settlement) => (settlement = s) };
      const stream = await openStream(meter, userId(req), shape, params, wordMs, options);
      const bound = upperBound({ messages: params.messages, model: DEMO_MODEL, maxTokens });

      res.status(200).set({ "content-type": "application/x-ndjson; charset=utf-8", "cache-control": "no-store", "x-accel-buffering": "no" });
      res.flushHeaders();
      await send(res, { type: "start", reservationId: stream.reservationId, held: bound.amount, promptTokens: bound.inputTokens, maxTokens });

      let finishReason: "stop" | "length" = "stop";
      try {
        for await (const piece of stream) {
          if (piece.text) await send(res, { type: "delta", text: piece.text });
          if (piece.finish) finishReason = piece.finish;
        }
        const s = settlement ?? (await stream.settled);
        if (!gone.signal.aborted) {
          await send(res, {
            type: "done",
            finishReason,
            promptTokens: s.usage.inputTokens,
            replyTokens: s.usage.outputTokens,
            charged: s.committed,
            refunded: s.refunded,
          });
        }
      } catch (err) {
        // Headers are out: report in the stream. The hold was settled by meterkit/ai.
        console.error("demo: chat stream failed", err);
        if (!res.destroyed) await send(res, { type: "error", message: "The reply failed; what was produced has been charged." });
      }
      res.end();
    } catch (err) {
      next(err);
    }
  };
}

/** What the route reads from a stream of any shape: text and, at the end, why it stopped. */
interface Piece {
  text?: string;
  finish?: "stop" | "length";
}

type ChatParams = { model: string; messages: ChatMessageLike[]; max_tokens: number; stream: true };

/**
 * Opens the metered stream in the wire format the page picked: OpenAI Chat Completions
 * (`meteredChat`), the OpenAI Responses API (`meteredResponses`, `instructions` + `input`) or
 * Anthropic Messages (`meteredMessages`, `system` + `messages`), each against the simulated
 * model speaking that format, and reads its events as pieces of text.
 */
async function openStream(
  meter: Meter,
  userId: string,
  shape: ModelShape,
  params: ChatParams,
  wordMs: number,
  options: { signal: AbortSignal; metadata: Record<string, unknown>; onSettle: (s: Settlement) => void },
): Promise<AsyncIterable<Piece> & { reservationId: string; settled: Promise<Settlement> }> {
  const [system, ...turns] = params.messages;
  const asPieces = <T>(stream: MeteredStream<T>, read: (event: T) => Piece) =>
    Object.assign(
      (async function* () {
        for await (const event of stream) yield read(event);
      })(),
      { reservationId: stream.reservationId, settled: stream.settled },
    );
  if (shape === "responses") {
    const request = { model: params.model, instructions: String(system!.content), input: turns, max_output_tokens: params.max_tokens, stream: true };
    const stream = await meteredResponses(meter, userId, request, (p, { signal }) => simulatedResponses({ model: p.model, messages: params.messages, max_tokens: p.max_output_tokens }, { wordMs, signal }), options);
    return asPieces(stream, (e) => ({
      ...(e.type === "response.output_text.delta" ? { text: String(e.delta) } : {}),
      ...(e.type === "response.incomplete" ? { finish: "length" as const } : {}),
    }));
  }
  if (shape === "anthropic") {
    const request = { model: params.model, system: String(system!.content), messages: turns as { role: "user" | "assistant"; content: string }[], max_tokens: params.max_tokens, stream: true };
    const stream = await meteredMessages(meter, userId, request, (p, { signal }) => simulatedMessages({ model: p.model, messages: params.messages, max_tokens: p.max_tokens }, { wordMs, signal }), options);
    return asPieces(stream, (e) => {
      const delta = e.delta as { text?: string; stop_reason?: string } | undefined;
      if (e.type === "content_block_delta" && delta?.text) return { text: delta.text };
      if (e.type === "message_delta" && delta?.stop_reason === "max_tokens") return { finish: "length" };
      return {};
    });
  }
  const stream = await meteredChat(meter, userId, params, (p, { signal }) => simulatedChat(p, { wordMs, signal }), options);
  return asPieces(stream, (chunk) => ({
    ...(chunk.choices[0]?.delta.content ? { text: chunk.choices[0].delta.content } : {}),
    ...(chunk.choices[0]?.finish_reason ? { finish: chunk.choices[0].finish_reason } : {}),
  }));
}

const SHAPES: readonly ModelShape[] = ["chat", "responses", "anthropic"];

/** Checks the body: the conversation (user and assistant turns), a reply limit and the model API shape (default `"chat"`). */
function readChatRequest(body: unknown): { messages: ChatMessageLike[]; maxTokens: number; shape: ModelShape } {
  const b = (body ?? {}) as { messages?: unknown; maxTokens?: unknown; shape?: unknown };
  const shape = (b.shape ?? "chat") as ModelShape;
  if (!SHAPES.includes(shape)) throw new MeterError("invalid_request", `shape must be one of ${SHAPES.join(", ")}.`, { field: "shape" });
  if (!Array.isArray(b.messages) || b.messages.length === 0 || b.messages.length > MAX_MESSAGES) {
    throw new MeterError("invalid_request", `messages must be a list of 1 to ${MAX_MESSAGES} chat messages.`, { field: "messages" });
  }
  const messages = b.messages.map((m: unknown, i): ChatMessageLike => {
    const msg = (m ?? {}) as { role?: unknown; content?: unknown };
    if ((msg.role !== "user" && msg.role !== "assistant") || typeof msg.content !== "string" || msg.content.length > MAX_CHARS) {
      throw new MeterError("invalid_request", `messages[${i}] must be { role: "user" | "assistant", content: string (at most ${MAX_CHARS} characters) }.`, {
        field: `messages[${i}]`,
      });
    }
    return { role: msg.role, content: msg.content };
  });
  if (messages.at(-1)?.role !== "user" || !String(messages.at(-1)?.content).trim()) {
    throw new MeterError("invalid_request", "The last message must be a non-empty user message.", { field: "messages" });
  }
  const maxTokens = b.maxTokens;
  if (typeof maxTokens !== "number" || !Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > MAX_REPLY_TOKENS) {
    throw new MeterError("invalid_request", `maxTokens must be a whole number from 1 to ${MAX_REPLY_TOKENS}.`, { field: "maxTokens" });
  }
  return { messages, maxTokens, shape };
}

/** Writes one event line, waiting for the socket when its buffer is full. */
function send(res: Response, event: ChatEvent): Promise<void> {
  if (res.destroyed) return Promise.resolve();
  if (res.write(JSON.stringify(event) + "\n")) return Promise.resolve();
  return new Promise((resolve) => {
    const go = () => {
      res.off("drain", go);
      res.off("close", go);
      resolve();
    };
    res.once("drain", go);
    res.once("close", go);
  });
}
