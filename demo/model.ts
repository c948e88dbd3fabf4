import { countTokens, estimateChatTokens } from "../src/ai/index.js";
import type { ChatMessageLike } from "../src/ai/index.js";

/*
 * The demo's model: no network, no weights, just canned text streamed the way an
 * OpenAI-compatible API streams it (chat.completion.chunk objects, a finish reason, and a final
 * usage chunk when `stream_options.include_usage` asks for one). Everything is deterministic:
 * the same conversation gets the same reply at the same pace, so the e2e test can check the
 * charge against the tokenizer.
 */

/** The request fields the simulated model reads (an OpenAI chat request). */
export interface SimulatedChatParams {
  model: string;
  messages: readonly ChatMessageLike[];
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  stream_options?: { include_usage?: boolean | null } | null;
}

/** One streamed chunk, as OpenAI sends it. */
export interface ChatChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: Array<{ index: number; delta: { role?: "assistant"; content?: string }; finish_reason: "stop" | "length" | null }>;
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

export interface SimulatedModelOptions {
  /** Mean milliseconds per word. 0 streams as fast as the consumer reads. */
  wordMs: number;
  /** Aborting it ends the stream (the client pressed Stop or went away). */
  signal?: AbortSignal;
}

const ABOUT = `meterkit lets an app charge its users for the tokens they really use. Before this reply started, the server counted your prompt with the real tokenizer and reserved the prompt plus the reply limit you picked: that is the "held" amount next to the balance. While I stream, the hold keeps two tabs from spending the same tokens twice. When I finish, the server commits what I actually produced and the rest of the hold goes straight back to your balance. If you press Stop, only the words already produced are charged.

Under the hood it is one Postgres ledger: every reserve, commit, refund and grant is an append-only entry, balances are a projection of those entries, and every change is pushed to the browser over Server-Sent Events. Open the Usage tab to see the entries this conversation wrote.`;

const TOKENS = `Tokens are the pieces of text a model reads and writes. A short English word is usually one token, longer words split into two or three, and punctuation counts too. This demo pretends to be gpt-4o-mini, so both your prompt and my reply are counted with OpenAI's o200k tokenizer, the same one the real model uses.

Your prompt costs a little more than its words: every message carries a few tokens of overhead for its role, and every reply is primed with three more. The system prompt is part of every request, and so is the whole conversation so far, which is why later questions in a long chat cost more than the first one. Pick a smaller reply limit to hold less while a reply streams.`;

const POEM = `A prompt goes out, a hold comes back,
the ledger keeps a careful track.
Each word I stream is counted true,
the unused tokens return to you.

And if you stop me mid-line,
you pay for what I said so far, and that is fine.`;

const GREETING = `Hello! I am the simulated model of the meterkit demo. I do not know much, but every word I say is metered for real: ask me what meterkit does, how tokens are counted, or ask for a long story and press Stop halfway to see what you are charged.`;

const STORY_PARAGRAPHS = [
  `Once upon a time, in a data centre that hummed like a beehive, there lived a small language model with a very large appetite for tokens. Every morning the users arrived with questions, and every morning the model answered them at length, because nobody had ever told it that words cost money.`,
  `The company that ran the model grew worried. Their bill arrived at the end of each month like a thunderstorm, and nobody could say which user had spent what. Some users asked for one haiku a week; others asked for the complete works of an imaginary novelist, twice a day, in three languages.`,
  `So the engineers built a ledger. Before the model spoke, the ledger counted the question and set aside enough tokens for the longest possible answer. If a user did not have enough, the ledger said so politely, and offered a pack of credits instead of an error page.`,
  `The model was suspicious at first. It did not like being measured. But it soon noticed that the ledger was fair: when an answer came out shorter than expected, the unused tokens went straight back to the user, and when a user pressed Stop, only the words already spoken were charged.`,
  `The users noticed too. A small badge in the corner of the page told them how many tokens they had left, and it ticked down as the model spoke, so nobody was ever surprised by a bill again. Two browser tabs could not spend the same tokens twice, because the ledger took a lock for a few microseconds while it checked.`,
  `Months passed. The thunderstorm bills turned into neat monthly invoices, the heavy users bought credit packs, and the light users kept their free allowance. The model still had a large appetite for tokens, but now every one of them was accounted for, reserved, committed, and, when it was not needed, refunded.`,
  `One evening an engineer asked the model whether it minded being metered. The model thought about it for exactly one token, and then, because its limit had been reached, it stopped.`,
];

const STORY = STORY_PARAGRAPHS.join("\n\n");

const GENERIC = [
  `I am a simulated model, so I will not pretend to know the answer. What I can show you is what the answer costs: your prompt was counted with the real tokenizer before I started, the server reserved it together with the reply limit, and it will charge exactly the words you are reading now. Try asking for a long story and pressing Stop.`,
  `That is a good question for a real model. I am only the demo's stand-in: I stream canned text word by word, at about the pace of a hosted model, so you can watch the held amount next to your balance while I talk and see the refund land when I finish.`,
  `Here is what just happened on the server: it counted your message and the conversation before it, reserved that plus your reply limit on the ledger, and started streaming me. When I stop talking it will commit the tokens I produced and give the rest of the hold back. The Usage tab lists each of those entries.`,
];

/** The text the simulated model answers to `prompt`, before any token limit cuts it. */
export function replyFor(prompt: string): string {
  const p = prompt.toLowerCase();
  if (/\b(story|essay|long|stop)\b/.test(p)) return STORY;
  if (/\b(poem|haiku|verse|rhyme)\b/.test(p)) return POEM;
  if (/\b(token|tokens|tokenizer|count|counted|price|cost|costs)\b/.test(p)) return TOKENS;
  if (/\b(meterkit|meter|ledger|work|works|does)\b/.test(p)) return ABOUT;
  if (/^\s*(hi|hello|hey|good (morning|afternoon|evening))\b/.test(p)) return GREETING;
  return GENERIC[hash(p) % GENERIC.length]!;
}

/** Splits a reply into the pieces that are streamed: each word with the whitespace before it. */
export function streamPieces(text: string): string[] {
  return text.match(/\s*\S+/g) ?? [];
}

/**
 * The reply to a conversation as it is streamed: whole words of `replyFor(last user message)`
 * as long as the reply stays within `maxTokens` tokens of the model's tokenizer.
 */
export function plannedReply(params: SimulatedChatParams): { pieces: string[]; finishReason: "stop" | "length" } {
  const lastUser = [...params.messages].reverse().find((m) => m.role === "user");
  const prompt = typeof lastUser?.content === "string" ? lastUser.content : "";
  const limit = params.max_completion_tokens ?? params.max_tokens ?? Infinity;
  const all = streamPieces(replyFor(prompt));
  const pieces: string[] = [];
  let text = "";
  for (const piece of all) {
    if (countTokens(text + piece, { model: params.model }) > limit) return { pieces, finishReason: "length" };
    pieces.push(piece);
    text += piece;
  }
  return { pieces, finishReason: "stop" };
}

/**
 * Streams a simulated chat completion: a role chunk, one chunk per word at a human-looking
 * pace, a finish chunk, and the usage chunk (prompt counted like OpenAI counts chat input,
 * completion with the model's tokenizer) when `stream_options.include_usage` is set.
 */
export async function* simulatedChat(params: SimulatedChatParams, options: SimulatedModelOptions): AsyncGenerator<ChatChunk> {
  const { pieces, finishReason } = plannedReply(params);
  const id = `chatcmpl-demo-${hash(JSON.stringify(params.messages)).toString(36)}`;
  const created = Math.floor(Date.now() / 1000);
  const chunk = (delta: ChatChunk["choices"][number]["delta"], finish: ChatChunk["choices"][number]["finish_reason"] = null): ChatChunk => ({
    id,
    object: "chat.completion.chunk",
    created,
    model: params.model,
    choices: [{ index: 0, delta, finish_reason: finish }],
  });

  // Time to first token: a hosted model takes a moment before the first word.
  await sleep(options.wordMs * 8, options.signal);
  yield chunk({ role: "assistant", content: "" });
  for (let i = 0; i < pieces.length; i++) {
    const piece = pieces[i]!;
    yield chunk({ content: piece });
    await sleep(wordDelay(options.wordMs, i, piece), options.signal);
  }
  yield chunk({}, finishReason);
  if (params.stream_options?.include_usage) {
    const prompt_tokens = estimateChatTokens(params.messages, { model: params.model });
    const completion_tokens = countTokens(pieces.join(""), { model: params.model });
    yield { ...chunk({}), choices: [], usage: { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens } };
  }
}

/** Between 0.6 and 1.4 times the mean, deterministic; a sentence end pauses a little longer. */
function wordDelay(mean: number, i: number, piece: string): number {
  const jitter = 0.6 + 0.8 * ((hash(String(i)) % 1000) / 1000);
  const pause = /[.!?:]$/.test(piece) ? 1.5 : 0;
  return Math.round(mean * (jitter + pause));
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    if (ms <= 0) return void setImmediate(resolve);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** FNV-1a, 32 bits: a stable choice from a string. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The wire format the simulated model speaks (the chat page's "Model API" select). */
export type ModelShape = "chat" | "responses" | "anthropic";

/** The request fields the simulated Responses and Anthropic shapes read. */
export interface SimulatedShapeParams {
  model: string;
  messages: readonly ChatMessageLike[];
  max_tokens: number;
}

/**
 * The same simulated reply as an OpenAI Responses API stream: `response.created`,
 * `response.output_text.delta` per word, `response.completed` with the response's usage
 * (`input_tokens`, `output_tokens` and their details), as `client.responses.create({ stream: true })` yields them.
 */
export async function* simulatedResponses(params: SimulatedShapeParams, options: SimulatedModelOptions): AsyncGenerator<Record<string, unknown>> {
  const { pieces, finishReason } = plannedReply(params);
  const id = `resp_demo_${hash(JSON.stringify(params.messages)).toString(36)}`;
  let seq = 0;
  const ev = (type: string, data: Record<string, unknown>) => ({ type, sequence_number: seq++, ...data });
  const text = pieces.join("");
  const usage = {
    input_tokens: estimateChatTokens(params.messages, { model: params.model }),
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: countTokens(text, { model: params.model }),
    output_tokens_details: { reasoning_tokens: 0 },
  };
  const response = (status: string, withUsage: boolean) => ({ id, object: "response", status, model: params.model, output: [], usage: withUsage ? usage : null });
  await sleep(options.wordMs * 8, options.signal);
  yield ev("response.created", { response: response("in_progress", false) });
  for (let i = 0; i < pieces.length; i++) {
    yield ev("response.output_text.delta", { item_id: `msg_${id}`, output_index: 0, content_index: 0, delta: pieces[i]! });
    await sleep(wordDelay(options.wordMs, i, pieces[i]!), options.signal);
  }
  const done = finishReason === "length" ? "response.incomplete" : "response.completed";
  yield ev(done, { response: response(finishReason === "length" ? "incomplete" : "completed", true) });
}

/**
 * The same simulated reply as an Anthropic Messages stream: `message_start` (input usage),
 * `content_block_delta` per word, `message_delta` (output usage and stop reason), `message_stop`,
 * as `anthropic.messages.create({ stream: true })` yields them.
 */
export async function* simulatedMessages(params: SimulatedShapeParams, options: SimulatedModelOptions): AsyncGenerator<Record<string, unknown>> {
  const { pieces, finishReason } = plannedReply(params);
  const id = `msg_demo_${hash(JSON.stringify(params.messages)).toString(36)}`;
  const input_tokens = estimateChatTokens(params.messages, { model: params.model });
  await sleep(options.wordMs * 8, options.signal);
  yield {
    type: "message_start",
    message: { id, type: "message", role: "assistant", model: params.model, content: [], usage: { input_tokens, cache_read_input_tokens: 0, cache_creation_input_tokens: 0, output_tokens: 1 } },
  };
  yield { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } };
  for (let i = 0; i < pieces.length; i++) {
    yield { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: pieces[i]! } };
    await sleep(wordDelay(options.wordMs, i, pieces[i]!), options.signal);
  }
  yield { type: "content_block_stop", index: 0 };
  const stop_reason = finishReason === "length" ? "max_tokens" : "end_turn";
  yield { type: "message_delta", delta: { stop_reason, stop_sequence: null }, usage: { output_tokens: countTokens(pieces.join(""), { model: params.model }) } };
  yield { type: "message_stop" };
}
