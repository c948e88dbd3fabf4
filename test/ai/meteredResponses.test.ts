import { getEncoding } from "js-tiktoken";
import OpenAI from "openai";
import type { ResponseInputItem, ResponseStreamEvent } from "openai/resources/responses/responses";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LimitReachedError } from "../../src/core/errors.js";
import { meteredResponses, upperBound } from "../../src/ai/index.js";
import type { Settlement } from "../../src/ai/index.js";
import { responsesMessages } from "../../src/ai/meteredResponses.js";
import { startResponsesStandin, type ResponsesStandin } from "../helpers/openai-responses-standin.js";
import { setupAiFixture, type AiFixture } from "./helpers.js";

const o200k = getEncoding("o200k_base");
const count = (text: string) => o200k.encode(text, [], []).length;

let fx: AiFixture;
let standin: ResponsesStandin;
let openai: OpenAI;
beforeAll(async () => {
  fx = await setupAiFixture();
  standin = await startResponsesStandin();
  openai = new OpenAI({ baseURL: standin.baseURL, apiKey: "sk-test", maxRetries: 0 });
});
afterAll(async () => {
  await standin?.close();
  await fx?.close();
});

const instructions = "You are a helpful assistant.";
const input: ResponseInputItem[] = [{ role: "user", content: "Tell me a short story about a lighthouse." }];
const TWENTY_WORDS = "Once upon a time a lighthouse keeper counted every wave that broke on the rocks below and never lost count even once.";

/** The hold meteredResponses takes for `input` on `model` with `max`. */
function boundOf(model: string, max: number, unit: "tokens" | "cents" = "tokens") {
  return upperBound({ messages: responsesMessages({ instructions, input }), model, maxTokens: max, unit });
}

function capture() {
  const seen: Settlement[] = [];
  return { seen, onSettle: (s: Settlement) => void seen.push(s) };
}

describe("meteredResponses, plain responses", () => {
  it("commits the usage of the response and refunds the rest of the hold", async () => {
    const userId = await fx.freeUser();
    standin.script({ usage: { input_tokens: 42, output_tokens: 7 } });
    const { seen, onSettle } = capture();
    const response = await meteredResponses(
      fx.meter,
      userId,
      { model: "gpt-4o", instructions, input, max_output_tokens: 200 },
      (p, { signal }) => openai.responses.create(p, { signal }),
      { onSettle },
    );
    expect(response.output_text).toBe("Hello from the stand-in model.");
    const bound = boundOf("gpt-4o", 200);
    expect(seen[0]).toMatchObject({ outcome: "committed", held: bound.amount, committed: 49, refunded: bound.amount - 49, overage: 0, usageSource: "provider", partial: false });
    expect(await fx.counter(userId, "tokens")).toEqual({ used: 49, held: 0, remaining: 20_000 - 49 });
  });

  it("prices cached input at the cache price and reasoning tokens once, as the output tokens they are", async () => {
    const userId = await fx.proUser();
    standin.script({ usage: { input_tokens: 100_000, cached_tokens: 40_000, output_tokens: 20_000, reasoning_tokens: 15_000 } });
    const { seen, onSettle } = capture();
    await meteredResponses(fx.meter, userId, { model: "gpt-5", input: "Think hard.", max_output_tokens: 25_000 }, (p) => openai.responses.create(p), {
      meterKey: "llm.cost",
      unit: "cents",
      onSettle,
    });
    // 60 000 × $1.25 + 40 000 × $0.125 + 20 000 × $10 per million = $0.075 + $0.005 + $0.20 = 28¢
    expect(seen[0]).toMatchObject({ outcome: "committed", unit: "cents", committed: 28, exact: "28" });
    expect(seen[0]?.usage).toMatchObject({ inputTokens: 100_000, cachedInputTokens: 40_000, outputTokens: 20_000, reasoningTokens: 15_000 });
    expect(await fx.counter(userId, "credits")).toEqual({ used: 28, held: 0, remaining: 472 });
  });

  it("denies with LimitReachedError and never calls the model when the bound exceeds the balance", async () => {
    const userId = await fx.freeUser();
    const before = standin.requests.length;
    const call = meteredResponses(fx.meter, userId, { model: "gpt-4o", input, max_output_tokens: 25_000 }, (p) => openai.responses.create(p));
    await expect(call).rejects.toBeInstanceOf(LimitReachedError);
    expect(standin.requests.length).toBe(before);
  });

  it("releases the hold when the provider fails before any output", async () => {
    const userId = await fx.freeUser();
    standin.script({ failStatus: 500 });
    const { seen, onSettle } = capture();
    const call = meteredResponses(fx.meter, userId, { model: "gpt-4o", input, max_output_tokens: 100 }, (p) => openai.responses.create(p), { onSettle });
    await expect(call).rejects.toBeInstanceOf(OpenAI.InternalServerError);
    expect(seen[0]).toMatchObject({ outcome: "released", committed: 0 });
    expect(await fx.counter(userId, "tokens")).toEqual({ used: 0, held: 0, remaining: 20_000 });
  });

  it("refuses a request without max_output_tokens, unless maxTokens is given and then sent", async () => {
    const userId = await fx.freeUser();
    await expect(meteredResponses(fx.meter, userId, { model: "gpt-4o", input }, (p) => openai.responses.create(p))).rejects.toMatchObject({ code: "invalid_request" });
    await meteredResponses(fx.meter, userId, { model: "gpt-4o", input }, (p) => openai.responses.create(p), { maxTokens: 64 });
    expect(standin.requests.at(-1)?.body.max_output_tokens).toBe(64);
  });

  it("counts the reply when the provider reports no usage", async () => {
    const userId = await fx.freeUser();
    standin.script({ text: TWENTY_WORDS, usage: "omit" });
    const { seen, onSettle } = capture();
    await meteredResponses(fx.meter, userId, { model: "gpt-4o", instructions, input, max_output_tokens: 300 }, (p) => openai.responses.create(p), { onSettle });
    const expected = boundOf("gpt-4o", 300).inputTokens + count(TWENTY_WORDS);
    expect(seen[0]).toMatchObject({ outcome: "committed", committed: expected, usageSource: "counted", partial: false });
  });

  it("counts instructions, messages, function calls and their outputs in the input estimate", () => {
    const messages = responsesMessages({
      instructions: "Be brief.",
      input: [
        { role: "user", content: [{ type: "input_text", text: "What is the weather in Paris?" }] },
        { type: "function_call", call_id: "call_1", name: "weather", arguments: '{"city":"Paris"}' },
        { type: "function_call_output", call_id: "call_1", output: '{"celsius":21}' },
      ],
    });
    expect(messages.map((m) => m.role)).toEqual(["system", "user", "assistant", "tool"]);
    const withCall = upperBound({ messages, model: "gpt-4o", maxTokens: 0 }).inputTokens;
    const without = upperBound({ messages: messages.slice(0, 2), model: "gpt-4o", maxTokens: 0 }).inputTokens;
    expect(withCall - without).toBeGreaterThanOrEqual(count("weather") + count('{"city":"Paris"}') + count('{"celsius":21}'));
  });
});

describe("meteredResponses, streams", () => {
  it("passes the events through unchanged and commits the usage of response.completed", async () => {
    const userId = await fx.freeUser();
    standin.script({ text: TWENTY_WORDS, usage: { input_tokens: 25, output_tokens: 24 } });
    const stream = await meteredResponses(fx.meter, userId, { model: "gpt-4o", instructions, input, max_output_tokens: 300, stream: true }, (p, { signal }) =>
      openai.responses.create(p, { signal }),
    );
    const types: string[] = [];
    let text = "";
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === "response.output_text.delta") text += event.delta;
    }
    expect(text).toBe(TWENTY_WORDS);
    expect(types.slice(0, 4)).toEqual(["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]);
    expect(types.at(-1)).toBe("response.completed");
    expect(await stream.settled).toMatchObject({ outcome: "committed", committed: 49, usageSource: "provider", partial: false });
    expect(await fx.counter(userId, "tokens")).toEqual({ used: 49, held: 0, remaining: 20_000 - 49 });
  });

  it("commits the usage of response.incomplete when the output limit was hit", async () => {
    const userId = await fx.freeUser();
    standin.script({ incomplete: true, usage: { input_tokens: 30, output_tokens: 50 } });
    const stream = await meteredResponses(fx.meter, userId, { model: "gpt-4o", input, max_output_tokens: 50, stream: true }, (p) => openai.responses.create(p));
    for await (const _ of stream) {
      // drain
    }
    expect(await stream.settled).toMatchObject({ outcome: "committed", committed: 80, usageSource: "provider", partial: false });
  });

  it("commits the input and the output streamed so far when the consumer stops reading, cancelling the request", async () => {
    const userId = await fx.freeUser();
    standin.script({ text: TWENTY_WORDS, chunkDelayMs: 5 });
    const stream = await meteredResponses(fx.meter, userId, { model: "gpt-4o", instructions, input, max_output_tokens: 300, stream: true }, (p, { signal }) =>
      openai.responses.create(p, { signal }),
    );
    let text = "";
    let deltas = 0;
    for await (const event of stream) {
      if (event.type !== "response.output_text.delta") continue;
      text += event.delta;
      if (++deltas === 5) break;
    }
    const expected = boundOf("gpt-4o", 300).inputTokens + count(text);
    expect(await stream.settled).toMatchObject({ outcome: "committed", committed: expected, usageSource: "counted", partial: true });
    expect(await fx.counter(userId, "tokens")).toEqual({ used: expected, held: 0, remaining: 20_000 - expected });
    await expect.poll(() => standin.requests.at(-1)?.closedEarly).toBe(true);
  });

  it("ends a stalled stream on the abort signal and commits what was produced", async () => {
    const userId = await fx.freeUser();
    standin.script({ text: TWENTY_WORDS, stallAfterChunks: 3 });
    const controller = new AbortController();
    const stream = await meteredResponses(
      fx.meter,
      userId,
      { model: "gpt-4o", instructions, input, max_output_tokens: 300, stream: true },
      (p, { signal }) => openai.responses.create(p, { signal }),
      { signal: controller.signal },
    );
    let text = "";
    for await (const event of stream) {
      if (event.type !== "response.output_text.delta") continue;
      text += event.delta;
      if (text.split(" ").filter(Boolean).length === 3) setTimeout(() => controller.abort(), 50);
    }
    const expected = boundOf("gpt-4o", 300).inputTokens + count(text);
    expect(await stream.settled).toMatchObject({ outcome: "committed", committed: expected, partial: true });
    await expect.poll(() => standin.requests.at(-1)?.closedEarly).toBe(true);
  });

  it("commits the output produced and rethrows when the connection drops mid-stream", async () => {
    const userId = await fx.freeUser();
    standin.script({ text: TWENTY_WORDS, failAfterChunks: 4 });
    const stream = await meteredResponses(fx.meter, userId, { model: "gpt-4o", instructions, input, max_output_tokens: 300, stream: true }, (p, { signal }) =>
      openai.responses.create(p, { signal }),
    );
    let text = "";
    await expect(
      (async () => {
        for await (const event of stream) if (event.type === "response.output_text.delta") text += event.delta;
      })(),
    ).rejects.toThrow();
    expect(text.split(" ").filter(Boolean)).toHaveLength(4);
    const expected = boundOf("gpt-4o", 300).inputTokens + count(text);
    expect(await stream.settled).toMatchObject({ outcome: "committed", committed: expected, partial: true });
    expect((await fx.counter(userId, "tokens")).held).toBe(0);
  });

  it("commits what was streamed when the stream ends without response.completed", async () => {
    const userId = await fx.freeUser();
    standin.script({ text: TWENTY_WORDS, endAfterChunks: 3 });
    const stream = await meteredResponses(fx.meter, userId, { model: "gpt-4o", instructions, input, max_output_tokens: 300, stream: true }, (p) => openai.responses.create(p));
    let text = "";
    for await (const event of stream) if (event.type === "response.output_text.delta") text += event.delta;
    const expected = boundOf("gpt-4o", 300).inputTokens + count(text);
    expect(await stream.settled).toMatchObject({ outcome: "committed", committed: expected, usageSource: "counted", partial: true });
  });

  it("releases the hold when the provider sends an error event before any output", async () => {
    const userId = await fx.freeUser();
    standin.script({ errorEventAfterChunks: 0 });
    const stream = await meteredResponses(fx.meter, userId, { model: "gpt-4o", input, max_output_tokens: 300, stream: true }, (p) => openai.responses.create(p));
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    expect(types.at(-1)).toBe("error");
    expect(await stream.settled).toMatchObject({ outcome: "released", committed: 0 });
    expect(await fx.counter(userId, "tokens")).toEqual({ used: 0, held: 0, remaining: 20_000 });
  });

  it("counts the whole reply when the final response carries no usage", async () => {
    const userId = await fx.freeUser();
    standin.script({ text: TWENTY_WORDS, usage: "omit" });
    const stream = await meteredResponses(fx.meter, userId, { model: "gpt-4o", instructions, input, max_output_tokens: 300, stream: true }, (p) => openai.responses.create(p));
    const events: ResponseStreamEvent[] = [];
    for await (const event of stream) events.push(event);
    const expected = boundOf("gpt-4o", 300).inputTokens + count(TWENTY_WORDS);
    expect(await stream.settled).toMatchObject({ outcome: "committed", committed: expected, usageSource: "counted", partial: false });
  });

  it("records the overage of a stream whose final usage exceeds the bound", async () => {
    const userId = await fx.freeUser();
    standin.script({ usage: { input_tokens: 20, output_tokens: 900 } });
    const stream = await meteredResponses(fx.meter, userId, { model: "gpt-4o", instructions, input, max_output_tokens: 5, stream: true }, (p) => openai.responses.create(p));
    for await (const _ of stream) {
      // drain
    }
    const bound = boundOf("gpt-4o", 5);
    expect(await stream.settled).toMatchObject({ committed: 920, overage: 920 - bound.amount, refunded: 0 });
    expect((await fx.counter(userId, "tokens")).used).toBe(920);
  });

  it("meters client.responses.stream() the same way", async () => {
    const userId = await fx.freeUser();
    standin.script({ usage: { input_tokens: 11, output_tokens: 6 } });
    const stream = await meteredResponses(fx.meter, userId, { model: "gpt-4o", input, max_output_tokens: 100 }, (p, { signal }) => openai.responses.stream(p, { signal }));
    for await (const _ of stream) {
      // drain
    }
    expect(standin.requests.at(-1)?.body.stream).toBe(true);
    expect(await stream.settled).toMatchObject({ outcome: "committed", committed: 17 });
  });
});
