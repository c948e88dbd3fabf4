import Anthropic from "@anthropic-ai/sdk";
import type { MessageParam, RawMessageStreamEvent } from "@anthropic-ai/sdk/resources/messages";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LimitReachedError } from "../../src/core/errors.js";
import { meteredMessages, upperBound } from "../../src/ai/index.js";
import type { Settlement } from "../../src/ai/index.js";
import { messagesOf } from "../../src/ai/meteredMessages.js";
import { utf8Length } from "../../src/ai/tokenizer.js";
import { startAnthropicStandin, type AnthropicStandin } from "../helpers/anthropic-standin.js";
import { setupAiFixture, type AiFixture } from "./helpers.js";

let fx: AiFixture;
let standin: AnthropicStandin;
let anthropic: Anthropic;
beforeAll(async () => {
  fx = await setupAiFixture();
  standin = await startAnthropicStandin();
  anthropic = new Anthropic({ baseURL: standin.baseURL, apiKey: "sk-ant-test", maxRetries: 0 });
});
afterAll(async () => {
  await standin?.close();
  await fx?.close();
});

const MODEL = "claude-sonnet-4-5";
const system = "You are a helpful assistant.";
const messages: MessageParam[] = [{ role: "user", content: "Tell me a short story about a lighthouse." }];
const TWENTY_WORDS = "Once upon a time a lighthouse keeper counted every wave that broke on the rocks below and never lost count even once.";

function boundOf(max: number, unit: "tokens" | "cents" = "tokens", cacheWrite?: "5m" | "1h") {
  return upperBound({ messages: messagesOf({ system, messages }), model: MODEL, maxTokens: max, unit, ...(cacheWrite ? { cacheWrite } : {}) });
}

function capture() {
  const seen: Settlement[] = [];
  return { seen, onSettle: (s: Settlement) => void seen.push(s) };
}

describe("meteredMessages, plain messages", () => {
  it("commits the prompt (uncached, cache reads and writes) plus the output, and refunds the rest", async () => {
    const userId = await fx.freeUser();
    standin.script({ usage: { input_tokens: 30, cache_read_input_tokens: 100, cache_write_5m: 50, cache_write_1h: 20, output_tokens: 9 } });
    const { seen, onSettle } = capture();
    const message = await meteredMessages(
      fx.meter,
      userId,
      { model: MODEL, system, messages, max_tokens: 300 },
      (p, { signal }) => anthropic.messages.create(p, { signal }),
      { onSettle },
    );
    expect(message.content[0]).toMatchObject({ type: "text", text: "Hello from the stand-in model." });
    const bound = boundOf(300);
    expect(seen[0]).toMatchObject({ outcome: "committed", held: bound.amount, committed: 209, refunded: bound.amount - 209, usageSource: "provider", partial: false });
    expect(seen[0]?.usage).toMatchObject({ inputTokens: 200, cachedInputTokens: 100, cacheWriteTokens: 50, cacheWrite1hTokens: 20, outputTokens: 9 });
    expect(await fx.counter(userId, "tokens")).toEqual({ used: 209, held: 0, remaining: 20_000 - 209 });
  });

  it("prices cache reads, 5-minute and 1-hour cache writes exactly on a cents counter", async () => {
    const userId = await fx.proUser();
    standin.script({ usage: { input_tokens: 10_000, cache_read_input_tokens: 20_000, cache_write_5m: 8_000, cache_write_1h: 4_000, output_tokens: 2_000 } });
    const { seen, onSettle } = capture();
    await meteredMessages(fx.meter, userId, { model: MODEL, system, messages, max_tokens: 2_000 }, (p) => anthropic.messages.create(p), {
      meterKey: "llm.cost",
      unit: "cents",
      onSettle,
    });
    // 10 000 × $3 + 20 000 × $0.30 + 8 000 × $3.75 + 4 000 × $6 + 2 000 × $15 per million = $0.12
    expect(seen[0]).toMatchObject({ outcome: "committed", committed: 12, exact: "12" });
    expect(await fx.counter(userId, "credits")).toEqual({ used: 12, held: 0, remaining: 488 });
  });

  it("keeps the running total of fractional cache-write charges exact with the counter's carried remainder", async () => {
    const userId = await fx.proUser();
    // Each call: 1 000 × $3 + 2 000 × $3.75 (5-minute writes) + 100 × $15 per million = 1.2¢, exact.
    const committed: number[] = [];
    for (let i = 0; i < 5; i++) {
      standin.script({ usage: { input_tokens: 1_000, cache_write_5m: 2_000, output_tokens: 100 } });
      await meteredMessages(fx.meter, userId, { model: MODEL, messages, max_tokens: 100 }, (p) => anthropic.messages.create(p), {
        meterKey: "llm.cost",
        unit: "cents",
        onSettle: (s) => void committed.push(s.committed),
      });
    }
    // 1.2, 2.4, 3.6, 4.8, 6.0: whole cents as the carry crosses them, never a cent per call.
    expect(committed).toEqual([1, 1, 1, 1, 2]);
    expect((await fx.counter(userId, "credits")).used).toBe(6);
  });

  it("charges every token at the long-context rates when the prompt exceeds 200K tokens", async () => {
    const userId = await fx.proUser();
    standin.script({ usage: { input_tokens: 150_000, cache_read_input_tokens: 100_000, output_tokens: 1_000 } });
    const { seen, onSettle } = capture();
    await meteredMessages(fx.meter, userId, { model: MODEL, messages, max_tokens: 1_000 }, (p) => anthropic.messages.create(p), { meterKey: "llm.cost", unit: "cents", onSettle });
    // 150 000 × $6 + 100 000 × $0.60 + 1 000 × $22.50 per million = $0.9825
    expect(seen[0]).toMatchObject({ outcome: "committed", committed: 98, exact: "98.25" });
  });

  it("holds the prompt at the cache-write price when the request asks for caching", async () => {
    const userId = await fx.proUser();
    const { seen, onSettle } = capture();
    const manual = system.repeat(3_000); // ≈ 87K bytes: a prompt worth caching
    const cached = [{ type: "text" as const, text: manual, cache_control: { type: "ephemeral" as const, ttl: "1h" as const } }];
    await meteredMessages(fx.meter, userId, { model: MODEL, system: cached, messages, max_tokens: 1_000 }, (p) => anthropic.messages.stream(p), {
      meterKey: "llm.cost",
      unit: "cents",
      onSettle,
    }).then(async (stream) => {
      for await (const _ of stream) {
        // drain
      }
    });
    const plain = upperBound({ messages: messagesOf({ system: cached, messages }), model: MODEL, maxTokens: 1_000, unit: "cents" });
    const written = upperBound({ messages: messagesOf({ system: cached, messages }), model: MODEL, maxTokens: 1_000, unit: "cents", cacheWrite: "1h" });
    // The prompt at $6 (a 1-hour write) instead of $3 per million.
    expect(written.amount).toBeGreaterThan(plain.amount + 20);
    expect(seen[0]?.held).toBe(written.amount);
  });

  it("denies with LimitReachedError and never calls the model when the bound exceeds the balance", async () => {
    const userId = await fx.freeUser();
    const before = standin.requests.length;
    const call = meteredMessages(fx.meter, userId, { model: MODEL, messages, max_tokens: 25_000 }, (p) => anthropic.messages.create(p));
    await expect(call).rejects.toBeInstanceOf(LimitReachedError);
    expect(standin.requests.length).toBe(before);
  });

  it("releases the hold when the provider fails before any output", async () => {
    const userId = await fx.freeUser();
    standin.script({ failStatus: 529 });
    const { seen, onSettle } = capture();
    const call = meteredMessages(fx.meter, userId, { model: MODEL, messages, max_tokens: 100 }, (p) => anthropic.messages.create(p), { onSettle });
    await expect(call).rejects.toBeInstanceOf(Anthropic.APIError);
    expect(seen[0]).toMatchObject({ outcome: "released", committed: 0 });
    expect(await fx.counter(userId, "tokens")).toEqual({ used: 0, held: 0, remaining: 20_000 });
  });

  it("refuses a request without max_tokens, unless maxTokens is given and then sent", async () => {
    const userId = await fx.freeUser();
    await expect(meteredMessages(fx.meter, userId, { model: MODEL, messages }, (p) => anthropic.messages.create({ ...p, max_tokens: 1 }))).rejects.toMatchObject({
      code: "invalid_request",
    });
    await meteredMessages(fx.meter, userId, { model: MODEL, messages }, (p) => anthropic.messages.create(p as typeof p & { max_tokens: number }), { maxTokens: 64 });
    expect(standin.requests.at(-1)?.body.max_tokens).toBe(64);
  });

  it("records the overage when the provider reports more than the bound", async () => {
    const userId = await fx.freeUser();
    standin.script({ usage: { input_tokens: 30, output_tokens: 500 } });
    const { seen, onSettle } = capture();
    await meteredMessages(fx.meter, userId, { model: MODEL, system, messages, max_tokens: 10 }, (p) => anthropic.messages.create(p), { onSettle });
    const bound = boundOf(10);
    expect(seen[0]).toMatchObject({ committed: 530, overage: 530 - bound.amount, refunded: 0 });
  });
});

describe("meteredMessages, streams", () => {
  it("passes the events through unchanged and commits message_delta's usage with message_start's input", async () => {
    const userId = await fx.freeUser();
    standin.script({ text: TWENTY_WORDS, usage: { input_tokens: 25, cache_read_input_tokens: 40, output_tokens: 24, thinking_tokens: 4 } });
    const stream = await meteredMessages(fx.meter, userId, { model: MODEL, system, messages, max_tokens: 300, stream: true }, (p, { signal }) =>
      anthropic.messages.create(p, { signal }),
    );
    const types: string[] = [];
    let text = "";
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === "content_block_delta" && event.delta.type === "text_delta") text += event.delta.text;
    }
    expect(text).toBe(TWENTY_WORDS);
    expect(types[0]).toBe("message_start");
    expect(types.slice(-2)).toEqual(["message_delta", "message_stop"]);
    const s = await stream.settled;
    // Thinking tokens are part of output_tokens: 25 + 40 + 24, never + 4 more.
    expect(s).toMatchObject({ outcome: "committed", committed: 89, usageSource: "provider", partial: false });
    expect(s.usage).toMatchObject({ inputTokens: 65, cachedInputTokens: 40, outputTokens: 24, reasoningTokens: 4 });
  });

  it("takes the input counts of message_delta when the API repeats them there", async () => {
    const userId = await fx.freeUser();
    standin.script({ deltaInput: true, usage: { input_tokens: 25, cache_write_1h: 10, output_tokens: 5 } });
    const stream = await meteredMessages(fx.meter, userId, { model: MODEL, messages, max_tokens: 300, stream: true }, (p) => anthropic.messages.create(p));
    for await (const _ of stream) {
      // drain
    }
    expect((await stream.settled).usage).toMatchObject({ inputTokens: 35, cacheWrite1hTokens: 10, outputTokens: 5 });
  });

  it("meters messages.stream() the same way", async () => {
    const userId = await fx.freeUser();
    standin.script({ usage: { input_tokens: 11, output_tokens: 6 } });
    const stream = await meteredMessages(fx.meter, userId, { model: MODEL, messages, max_tokens: 100 }, (p, { signal }) => anthropic.messages.stream(p, { signal }));
    const events: RawMessageStreamEvent[] = [];
    for await (const event of stream) events.push(event);
    expect(standin.requests.at(-1)?.body.stream).toBe(true);
    expect(events.at(-1)?.type).toBe("message_stop");
    expect(await stream.settled).toMatchObject({ outcome: "committed", committed: 17 });
  });

  it("commits the reported input and the output streamed so far when the consumer stops reading", async () => {
    const userId = await fx.freeUser();
    standin.script({ text: TWENTY_WORDS, chunkDelayMs: 5, usage: { input_tokens: 25, cache_read_input_tokens: 40, output_tokens: 24 } });
    const stream = await meteredMessages(fx.meter, userId, { model: MODEL, system, messages, max_tokens: 300, stream: true }, (p, { signal }) =>
      anthropic.messages.create(p, { signal }),
    );
    let text = "";
    let deltas = 0;
    for await (const event of stream) {
      if (event.type !== "content_block_delta" || event.delta.type !== "text_delta") continue;
      text += event.delta.text;
      if (++deltas === 5) break;
    }
    // Claude's tokenizer is not public: the output is counted as UTF-8 bytes, never below the real count.
    const expected = 65 + utf8Length(text);
    expect(await stream.settled).toMatchObject({ outcome: "committed", committed: expected, usageSource: "counted", partial: true });
    expect(await fx.counter(userId, "tokens")).toEqual({ used: expected, held: 0, remaining: 20_000 - expected });
    await expect.poll(() => standin.requests.at(-1)?.closedEarly).toBe(true);
  });

  it("ends a stalled messages.stream() on the abort signal and commits what was produced", async () => {
    const userId = await fx.freeUser();
    standin.script({ text: TWENTY_WORDS, stallAfterChunks: 3, usage: { input_tokens: 25, output_tokens: 24 } });
    const controller = new AbortController();
    const stream = await meteredMessages(fx.meter, userId, { model: MODEL, messages, max_tokens: 300 }, (p, { signal }) => anthropic.messages.stream(p, { signal }), {
      signal: controller.signal,
    });
    let text = "";
    let deltas = 0;
    for await (const event of stream) {
      if (event.type !== "content_block_delta" || event.delta.type !== "text_delta") continue;
      text += event.delta.text;
      if (++deltas === 3) setTimeout(() => controller.abort(), 50);
    }
    expect(deltas).toBe(3);
    expect(await stream.settled).toMatchObject({ outcome: "committed", committed: 25 + utf8Length(text), partial: true });
    await expect.poll(() => standin.requests.at(-1)?.closedEarly).toBe(true);
  });

  it("commits the output produced and rethrows when the connection drops mid-stream", async () => {
    const userId = await fx.freeUser();
    standin.script({ text: TWENTY_WORDS, failAfterChunks: 4, usage: { input_tokens: 25, output_tokens: 24 } });
    const stream = await meteredMessages(fx.meter, userId, { model: MODEL, messages, max_tokens: 300, stream: true }, (p, { signal }) => anthropic.messages.create(p, { signal }));
    let text = "";
    await expect(
      (async () => {
        for await (const event of stream) if (event.type === "content_block_delta" && event.delta.type === "text_delta") text += event.delta.text;
      })(),
    ).rejects.toThrow();
    expect(text.split(" ").filter(Boolean)).toHaveLength(4);
    expect(await stream.settled).toMatchObject({ outcome: "committed", committed: 25 + utf8Length(text), partial: true });
    expect((await fx.counter(userId, "tokens")).held).toBe(0);
  });

  it("releases the hold when the provider sends an error event before any output", async () => {
    const userId = await fx.freeUser();
    standin.script({ errorEventAfterChunks: 0 });
    const stream = await meteredMessages(fx.meter, userId, { model: MODEL, messages, max_tokens: 300, stream: true }, (p) => anthropic.messages.create(p));
    await expect(
      (async () => {
        for await (const _ of stream) {
          // message_start carries no output
        }
      })(),
    ).rejects.toBeInstanceOf(Anthropic.APIError);
    expect(await stream.settled).toMatchObject({ outcome: "released", committed: 0 });
    expect(await fx.counter(userId, "tokens")).toEqual({ used: 0, held: 0, remaining: 20_000 });
  });

  it("commits the reported input and the counted output when the stream ends without message_delta", async () => {
    const userId = await fx.freeUser();
    standin.script({ text: TWENTY_WORDS, endAfterChunks: 3, usage: { input_tokens: 25, output_tokens: 24 } });
    const stream = await meteredMessages(fx.meter, userId, { model: MODEL, messages, max_tokens: 300, stream: true }, (p) => anthropic.messages.create(p));
    let text = "";
    for await (const event of stream) if (event.type === "content_block_delta" && event.delta.type === "text_delta") text += event.delta.text;
    expect(await stream.settled).toMatchObject({ outcome: "committed", committed: 25 + utf8Length(text), usageSource: "counted", partial: true });
  });

  it("records the overage of a stream whose final usage exceeds the bound", async () => {
    const userId = await fx.freeUser();
    standin.script({ usage: { input_tokens: 20, output_tokens: 900 } });
    const stream = await meteredMessages(fx.meter, userId, { model: MODEL, system, messages, max_tokens: 5, stream: true }, (p) => anthropic.messages.create(p));
    for await (const _ of stream) {
      // drain
    }
    expect(await stream.settled).toMatchObject({ committed: 920, overage: 920 - boundOf(5).amount, refunded: 0 });
  });
});
