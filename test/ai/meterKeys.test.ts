import Anthropic from "@anthropic-ai/sdk";
import { getEncoding } from "js-tiktoken";
import OpenAI from "openai";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LimitReachedError } from "../../src/core/errors.js";
import { DEFAULT_PRICES } from "../../src/core/prices.js";
import { costOf, meteredChat, meteredMessages, meteredResponses, upperBound } from "../../src/ai/index.js";
import type { Settlement } from "../../src/ai/index.js";
import { messagesOf } from "../../src/ai/meteredMessages.js";
import { responsesMessages } from "../../src/ai/meteredResponses.js";
import { utf8Length } from "../../src/ai/tokenizer.js";
import { createMeter, type Meter } from "../../src/server/index.js";
import { startAnthropicStandin, type AnthropicStandin } from "../helpers/anthropic-standin.js";
import { freshDatabase } from "../helpers/db.js";
import { startOpenAIStandin, type OpenAIStandin } from "../helpers/openai-standin.js";
import { startResponsesStandin, type ResponsesStandin } from "../helpers/openai-responses-standin.js";

// meterKeys: the input estimate and the output bound held on two counters in one reservation,
// with the real openai and @anthropic-ai/sdk clients against the local stand-ins.
let db: Awaited<ReturnType<typeof freshDatabase>>;
let meter: Meter;
let chatStandin: OpenAIStandin;
let responsesStandin: ResponsesStandin;
let anthropicStandin: AnthropicStandin;
let openaiChat: OpenAI;
let openai: OpenAI;
let anthropic: Anthropic;

const TOKENS = { meterKeys: { input: "llm.input", output: "llm.output" } } as const;
const CENTS = { meterKeys: { input: "cost.input", output: "cost.output" }, unit: "cents" } as const;

beforeAll(async () => {
  db = await freshDatabase();
  meter = createMeter({
    database: db.url,
    sweepInterval: 0,
    holdTtl: 60_000,
    prices: DEFAULT_PRICES,
    plans: {
      split: { limits: { tokens_in: { quota: 20_000 }, tokens_out: { quota: 2_000 } } },
      money: { limits: { cents_in: { quota: 500, unit: "cents" }, cents_out: { quota: 500, unit: "cents" } } },
    },
    meters: {
      "llm.input": { counter: "tokens_in", counts: "input" },
      "llm.output": { counter: "tokens_out", counts: "output" },
      "cost.input": { counter: "cents_in", counts: "input" },
      "cost.output": { counter: "cents_out", counts: "output" },
    },
  });
  await meter.migrate();
  [chatStandin, responsesStandin, anthropicStandin] = await Promise.all([startOpenAIStandin(), startResponsesStandin(), startAnthropicStandin()]);
  openaiChat = new OpenAI({ baseURL: chatStandin.baseURL, apiKey: "sk-test", maxRetries: 0 });
  openai = new OpenAI({ baseURL: responsesStandin.baseURL, apiKey: "sk-test", maxRetries: 0 });
  anthropic = new Anthropic({ baseURL: anthropicStandin.baseURL, apiKey: "sk-ant-test", maxRetries: 0 });
});
afterAll(async () => {
  await Promise.all([chatStandin?.close(), responsesStandin?.close(), anthropicStandin?.close()]);
  await meter?.close();
  await db?.drop();
});

async function user(planId = "split"): Promise<string> {
  const userId = "u_" + randomUUID();
  await meter.upsertSubscription({ userId, planId });
  return userId;
}

/** used/held of every counter of a user. */
async function counters(userId: string) {
  return Object.fromEntries((await meter.usage(userId)).counters.map((c) => [c.key, { used: c.used, held: c.held }]));
}

function capture() {
  const seen: Settlement[] = [];
  return { seen, onSettle: (s: Settlement) => void seen.push(s) };
}

const o200k = getEncoding("o200k_base");
const count = (text: string) => o200k.encode(text, [], []).length;
const chatMessages = [{ role: "user" as const, content: "Tell me a short story about a lighthouse." }];
const input = "Tell me a short story about a lighthouse.";
const anthropicMessages = [{ role: "user" as const, content: "Tell me a short story about a lighthouse." }];
const TWENTY_WORDS = "Once upon a time a lighthouse keeper counted every wave that broke on the rocks below and never lost count even once.";

describe("meteredChat with meterKeys", () => {
  it("holds the input estimate on one counter and max_tokens on the other, and commits each side", async () => {
    const userId = await user();
    const bound = upperBound({ messages: chatMessages, model: "gpt-4o", maxTokens: 500 });
    chatStandin.script({ usage: { prompt_tokens: 14, completion_tokens: 12, cached_tokens: 8 }, delayMs: 100 });
    const { seen, onSettle } = capture();
    const pending = meteredChat(meter, userId, { model: "gpt-4o", messages: chatMessages, max_tokens: 500 }, (p, { signal }) => openaiChat.chat.completions.create(p, { signal }), {
      ...TOKENS,
      onSettle,
    });
    await expect.poll(() => counters(userId)).toEqual({ tokens_in: { used: 0, held: bound.inputTokens }, tokens_out: { used: 0, held: 500 } });
    await pending;
    // Cached input tokens are input tokens.
    expect(await counters(userId)).toEqual({ tokens_in: { used: 14, held: 0 }, tokens_out: { used: 12, held: 0 } });
    expect(seen[0]).toMatchObject({
      outcome: "committed",
      meterKey: "llm.input+llm.output",
      held: bound.inputTokens + 500,
      committed: 26,
      parts: {
        tokens_in: { meterKey: "llm.input", held: bound.inputTokens, committed: 14, overage: 0 },
        tokens_out: { meterKey: "llm.output", held: 500, committed: 12, refunded: 488, overage: 0 },
      },
    });
  });

  it("all or nothing: an output bound over its counter is denied and holds no input either; the model is not called", async () => {
    const userId = await user();
    const before = chatStandin.requests.length;
    const call = meteredChat(meter, userId, { model: "gpt-4o", messages: chatMessages, max_tokens: 2_001 }, (p) => openaiChat.chat.completions.create(p), TOKENS);
    await expect(call).rejects.toMatchObject({ code: "limit_reached", details: { counter: "tokens_out", remaining: 2_000, required: 2_001 } });
    await expect(call).rejects.toBeInstanceOf(LimitReachedError);
    expect(chatStandin.requests.length).toBe(before);
    expect(await counters(userId)).toEqual({ tokens_in: { used: 0, held: 0 }, tokens_out: { used: 0, held: 0 } });
  });

  it("records an overage on the output counter alone when the provider reports more than max_tokens", async () => {
    const userId = await user();
    chatStandin.script({ usage: { prompt_tokens: 10, completion_tokens: 130 } });
    const { seen, onSettle } = capture();
    await meteredChat(meter, userId, { model: "gpt-4o", messages: chatMessages, max_tokens: 100 }, (p) => openaiChat.chat.completions.create(p), { ...TOKENS, onSettle });
    expect(seen[0]?.parts).toMatchObject({ tokens_in: { committed: 10, overage: 0 }, tokens_out: { held: 100, committed: 130, overage: 30 } });
    expect(seen[0]).toMatchObject({ overage: 30 });
    expect(await counters(userId)).toEqual({ tokens_in: { used: 10, held: 0 }, tokens_out: { used: 130, held: 0 } });
  });

  it("releases both sides when the provider fails before any output", async () => {
    const userId = await user();
    chatStandin.script({ failStatus: 500 });
    const { seen, onSettle } = capture();
    await expect(
      meteredChat(meter, userId, { model: "gpt-4o", messages: chatMessages, max_tokens: 100 }, (p) => openaiChat.chat.completions.create(p), { ...TOKENS, onSettle }),
    ).rejects.toBeInstanceOf(OpenAI.InternalServerError);
    expect(seen[0]).toMatchObject({ outcome: "released", committed: 0, parts: { tokens_in: { committed: 0 }, tokens_out: { held: 100, refunded: 100 } } });
    expect(await counters(userId)).toEqual({ tokens_in: { used: 0, held: 0 }, tokens_out: { used: 0, held: 0 } });
  });

  it("a stream stopped early commits the input estimate on one side and the output streamed so far on the other", async () => {
    const userId = await user();
    const bound = upperBound({ messages: chatMessages, model: "gpt-4o", maxTokens: 300 });
    chatStandin.script({ text: TWENTY_WORDS, chunkDelayMs: 5 });
    const stream = await meteredChat(meter, userId, { model: "gpt-4o", messages: chatMessages, max_tokens: 300, stream: true }, (p, { signal }) =>
      openaiChat.chat.completions.create(p, { signal }),
    TOKENS);
    let text = "";
    let chunks = 0;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      if (chunk.choices[0]?.delta.content && ++chunks === 5) break;
    }
    expect(await stream.settled).toMatchObject({ outcome: "committed", partial: true, usageSource: "counted" });
    expect(await counters(userId)).toEqual({ tokens_in: { used: bound.inputTokens, held: 0 }, tokens_out: { used: count(text), held: 0 } });
  });

  it("refuses meterKeys beside meterKey, or naming one meter twice, before reserving", async () => {
    const userId = await user();
    const call = (options: object) => meteredChat(meter, userId, { model: "gpt-4o", messages: chatMessages, max_tokens: 5 }, (p) => openaiChat.chat.completions.create(p), options);
    await expect(call({ ...TOKENS, meterKey: "llm.input" })).rejects.toMatchObject({ code: "invalid_request", details: { field: "meterKeys" } });
    await expect(call({ meterKeys: { input: "llm.input", output: "llm.input" } })).rejects.toMatchObject({ code: "invalid_request" });
    await expect(call({ meterKeys: { input: "llm.input" } })).rejects.toMatchObject({ code: "invalid_request" });
    expect(await counters(userId)).toEqual({ tokens_in: { used: 0, held: 0 }, tokens_out: { used: 0, held: 0 } });
  });
});

describe("meteredResponses with meterKeys", () => {
  const boundOf = (max: number) => upperBound({ messages: responsesMessages({ input }), model: "gpt-4o", maxTokens: max });

  it("commits input (cached included) on one side and output (reasoning included) on the other", async () => {
    const userId = await user();
    responsesStandin.script({ usage: { input_tokens: 60, cached_tokens: 50, output_tokens: 30, reasoning_tokens: 20 } });
    const { seen, onSettle } = capture();
    await meteredResponses(meter, userId, { model: "gpt-4o", input, max_output_tokens: 400 }, (p, { signal }) => openai.responses.create(p, { signal }), { ...TOKENS, onSettle });
    expect(await counters(userId)).toEqual({ tokens_in: { used: 60, held: 0 }, tokens_out: { used: 30, held: 0 } });
    expect(seen[0]?.parts).toMatchObject({ tokens_in: { held: boundOf(400).inputTokens, committed: 60 }, tokens_out: { held: 400, committed: 30, refunded: 370 } });
  });

  it("a full stream commits the usage of response.completed; overage lands on the output counter", async () => {
    const userId = await user();
    responsesStandin.script({ usage: { input_tokens: 9, output_tokens: 80, reasoning_tokens: 70 } });
    const stream = await meteredResponses(meter, userId, { model: "gpt-4o", input, max_output_tokens: 50, stream: true }, (p, { signal }) => openai.responses.create(p, { signal }), TOKENS);
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    expect(types.at(-1)).toBe("response.completed");
    expect((await stream.settled).parts).toMatchObject({ tokens_in: { committed: 9, overage: 0 }, tokens_out: { held: 50, committed: 80, overage: 30 } });
    expect(await counters(userId)).toEqual({ tokens_in: { used: 9, held: 0 }, tokens_out: { used: 80, held: 0 } });
  });

  it("a stream cut by the connection mid-answer commits the input estimate and the output streamed", async () => {
    const userId = await user();
    responsesStandin.script({ text: TWENTY_WORDS, failAfterChunks: 4 });
    const stream = await meteredResponses(meter, userId, { model: "gpt-4o", input, max_output_tokens: 300, stream: true }, (p, { signal }) => openai.responses.create(p, { signal }), TOKENS);
    let text = "";
    await expect(
      (async () => {
        for await (const event of stream) if (event.type === "response.output_text.delta") text += event.delta;
      })(),
    ).rejects.toThrow();
    expect(text.split(" ").filter(Boolean)).toHaveLength(4);
    expect(await stream.settled).toMatchObject({ outcome: "committed", partial: true });
    expect(await counters(userId)).toEqual({ tokens_in: { used: boundOf(300).inputTokens, held: 0 }, tokens_out: { used: count(text), held: 0 } });
  });
});

describe("meteredMessages with meterKeys", () => {
  const boundOf = (max: number, unit: "tokens" | "cents" = "tokens", cacheWrite?: "5m" | "1h") =>
    upperBound({ messages: messagesOf({ messages: anthropicMessages }), model: "claude-sonnet-4-5", maxTokens: max, unit, ...(cacheWrite ? { cacheWrite } : {}) });

  it("counts cache reads and writes as input and thinking as output", async () => {
    const userId = await user();
    anthropicStandin.script({ usage: { input_tokens: 30, cache_read_input_tokens: 100, cache_write_5m: 50, cache_write_1h: 20, output_tokens: 9, thinking_tokens: 4 } });
    await meteredMessages(meter, userId, { model: "claude-sonnet-4-5", messages: anthropicMessages, max_tokens: 300 }, (p, { signal }) => anthropic.messages.create(p, { signal }), TOKENS);
    expect(await counters(userId)).toEqual({ tokens_in: { used: 200, held: 0 }, tokens_out: { used: 9, held: 0 } });
  });

  it("messages.stream() stopped by the abort signal commits message_start's input and the output so far", async () => {
    const userId = await user();
    anthropicStandin.script({ text: TWENTY_WORDS, stallAfterChunks: 3, usage: { input_tokens: 25, cache_read_input_tokens: 5, output_tokens: 24 } });
    const controller = new AbortController();
    const stream = await meteredMessages(meter, userId, { model: "claude-sonnet-4-5", messages: anthropicMessages, max_tokens: 300 }, (p, { signal }) => anthropic.messages.stream(p, { signal }), {
      ...TOKENS,
      signal: controller.signal,
    });
    let text = "";
    let deltas = 0;
    for await (const event of stream) {
      if (event.type !== "content_block_delta" || event.delta.type !== "text_delta") continue;
      text += event.delta.text;
      if (++deltas === 3) setTimeout(() => controller.abort(), 50);
    }
    expect(await stream.settled).toMatchObject({ outcome: "committed", partial: true });
    expect(await counters(userId)).toEqual({ tokens_in: { used: 30, held: 0 }, tokens_out: { used: utf8Length(text), held: 0 } });
    await expect.poll(() => anthropicStandin.requests.at(-1)?.closedEarly).toBe(true);
  });

  it("a full stream commits message_delta's usage; thinking past max_tokens is overage on the output counter", async () => {
    const userId = await user();
    anthropicStandin.script({ usage: { input_tokens: 12, output_tokens: 140, thinking_tokens: 120 } });
    const stream = await meteredMessages(meter, userId, { model: "claude-sonnet-4-5", messages: anthropicMessages, max_tokens: 100, stream: true }, (p) => anthropic.messages.create(p), TOKENS);
    for await (const _ of stream) void _;
    expect((await stream.settled).parts).toMatchObject({ tokens_in: { committed: 12, overage: 0 }, tokens_out: { held: 100, committed: 140, overage: 40 } });
  });

  it("on cents counters, holds each side at its price and commits each side at its price, cache writes on the input side", async () => {
    const userId = await user("money");
    const bound = boundOf(20_000, "cents", "1h");
    anthropicStandin.script({ usage: { input_tokens: 10_000, cache_read_input_tokens: 20_000, cache_write_5m: 8_000, cache_write_1h: 4_000, output_tokens: 2_000 } });
    const { seen, onSettle } = capture();
    const pending = meteredMessages(
      meter,
      userId,
      { model: "claude-sonnet-4-5", system: [{ type: "text" as const, text: "Be brief.", cache_control: { type: "ephemeral" as const, ttl: "1h" as const } }], messages: anthropicMessages, max_tokens: 20_000 },
      (p) => anthropic.messages.create(p),
      { ...CENTS, onSettle },
    );
    await pending;
    // Input side: 10 000 × $3 + 20 000 × $0.30 + 8 000 × $3.75 + 4 000 × $6 per million = 9¢; output: 2 000 × $15 = 3¢.
    const full = costOf({ model: "claude-sonnet-4-5", inputTokens: 42_000, cachedInputTokens: 20_000, cacheWriteTokens: 8_000, cacheWrite1hTokens: 4_000, outputTokens: 2_000 });
    expect(full.exact).toBe("12");
    expect(seen[0]?.parts).toMatchObject({ cents_in: { committed: 9 }, cents_out: { held: 30, committed: 3, refunded: 27 } });
    expect(seen[0]).toMatchObject({ exact: "12", committed: 12, unit: "cents" });
    expect(bound.sides.output).toBe(30);
    expect(await counters(userId)).toEqual({ cents_in: { used: 9, held: 0 }, cents_out: { used: 3, held: 0 } });
  });
});
