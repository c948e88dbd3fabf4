import { DEFAULT_PRICES } from "../core/prices.js";
import { findModel } from "./resolveModel.js";
import { encodingForModel, textCounter, utf8Length, type Encoding, type TextCounter } from "./tokenizer.js";
import type { ChatMessageLike, EstimateOptions } from "./types.js";

/*
 * OpenAI's documented chat overhead ("How to count tokens with tiktoken"): every message costs
 * 3 tokens around its role and content, a name 1 more, and every reply is primed with 3.
 * gpt-3.5-turbo-0301 used 4 per message and -1 per name.
 * For models whose tokenizer is not public we add a generous 10 per message and per reply on
 * top of the byte-counted role and content.
 */
const OPENAI_PER_MESSAGE = 3;
const OPENAI_PER_NAME = 1;
const OPENAI_REPLY_PRIMING = 3;
const ESTIMATE_PER_MESSAGE = 10;
const ESTIMATE_REPLY_PRIMING = 10;
/** Per tool call in an assistant message (as OpenAI renders function-call metadata). */
const TOOL_CALL_OVERHEAD = 3;
/** Once per request that defines tools (the `namespace functions` wrapper). */
const TOOLS_OVERHEAD = 9;

/** Largest image cost under OpenAI's rules: 8 high-detail tiles of gpt-4o-mini (2,833 + 8 × 5,667). */
const GPT_4O_MINI_IMAGE_TOKENS = 48_169;
/** Largest image cost of the other vision models: 1,536 patches × 2.46 (gpt-4.1-nano), above 85 + 8 × 170 tiles. */
const IMAGE_TOKENS = 3_779;

/**
 * Counts the input tokens of an OpenAI-style chat request: message contents with the model's
 * real tokenizer (o200k for gpt-4o / 4.1 / o-series / gpt-5, cl100k for gpt-4 / gpt-3.5), plus
 * OpenAI's documented per-message overhead, tool definitions and images. For models whose
 * tokenizer is not public (Claude, Gemini, unknown) it counts UTF-8 bytes, an estimate that by
 * design is never below the real count.
 */
export function estimateChatTokens(messages: readonly ChatMessageLike[], options: EstimateOptions): number {
  const { model } = options;
  const prices = options.prices ?? DEFAULT_PRICES;
  const encoding = encodingForModel(model, findModel(prices, model)?.price);
  const count = textCounter(encoding, options.tokenizer);
  const exact = encoding !== "estimate";
  const legacy = /gpt-3\.5-turbo-0301/.test(model);
  const perMessage = exact ? (legacy ? 4 : OPENAI_PER_MESSAGE) : ESTIMATE_PER_MESSAGE;
  const perName = exact ? (legacy ? 0 : OPENAI_PER_NAME) : 0;
  const imageTokens = options.imageTokens ?? (/gpt-4o-mini/.test(model) ? GPT_4O_MINI_IMAGE_TOKENS : IMAGE_TOKENS);

  let total = exact ? OPENAI_REPLY_PRIMING : ESTIMATE_REPLY_PRIMING;
  for (const message of messages) {
    total += perMessage + count(message.role);
    if (message.name) total += count(message.name) + perName;
    total += contentTokens(message.content, count, imageTokens, encoding);
    if (message.refusal) total += count(message.refusal);
    if (message.tool_call_id) total += count(message.tool_call_id);
    total += toolCallTokens(message.tool_calls, count);
    if (message.function_call) total += toolCallTokens([{ function: message.function_call }], count);
  }
  if (options.tools && options.tools.length > 0) {
    total += count(JSON.stringify(options.tools)) + TOOLS_OVERHEAD;
  }
  return total;
}

function contentTokens(content: unknown, count: TextCounter, imageTokens: number, encoding: Encoding): number {
  if (content === undefined || content === null) return 0;
  if (typeof content === "string") return count(content);
  if (!Array.isArray(content)) return count(JSON.stringify(content));
  let total = 0;
  for (const part of content as unknown[]) {
    if (typeof part === "string") {
      total += count(part);
      continue;
    }
    const p = part as { type?: unknown; text?: unknown; refusal?: unknown };
    if ((p.type === "text" || p.type === "input_text") && typeof p.text === "string") total += count(p.text);
    else if (p.type === "refusal" && typeof p.refusal === "string") total += count(p.refusal);
    else if (p.type === "image_url" || p.type === "input_image" || p.type === "image") total += imageTokens;
    // Audio and files: their serialized size bounds the text they carry; media tokens beyond
    // that are the provider's and show up in the reported usage (and any overage).
    else total += encoding === "estimate" ? utf8Length(JSON.stringify(part)) : count(JSON.stringify(part));
  }
  return total;
}

function toolCallTokens(calls: unknown, count: TextCounter): number {
  if (!Array.isArray(calls)) return 0;
  let total = 0;
  for (const call of calls as unknown[]) {
    const c = call as { id?: unknown; function?: { name?: unknown; arguments?: unknown }; custom?: { name?: unknown; input?: unknown } };
    const fn = c.function ?? c.custom;
    if (!fn) continue;
    if (typeof fn.name === "string") total += count(fn.name);
    const args = (fn as { arguments?: unknown }).arguments ?? (fn as { input?: unknown }).input;
    if (typeof args === "string") total += count(args);
    if (typeof c.id === "string") total += count(c.id);
    total += TOOL_CALL_OVERHEAD;
  }
  return total;
}
