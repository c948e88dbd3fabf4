import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { generateText, streamText, wrapLanguageModel } from "ai";
import { getEncoding } from "js-tiktoken";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LimitReachedError } from "../../src/core/errors.js";
import { meterMiddleware, toChatMessages, upperBound } from "../../src/ai/index.js";
import type { MeterMiddlewareOptions, Settlement } from "../../src/ai/index.js";
import { setupAiFixture, type AiFixture } from "./helpers.js";

const o200k = getEncoding("o200k_base");
const count = (text: string) => o200k.encode(text, [], []).length;
const STORY = "Once upon a time a lighthouse keeper counted every wave that broke on the rocks below and never lost count even once.";
const SYSTEM = "You are a helpful assistant.";
const PROMPT = "Tell me a short story about a lighthouse.";

let fx: AiFixture;
let provider: ReturnType<typeof createOpenAICompatible>;
beforeAll(async () => {
  fx = await setupAiFixture();
  provider = createOpenAICompatible({ name: "standin", baseURL: fx.standin.baseURL, apiKey: "sk-test", includeUsage: true });
});
afterAll(async () => {
  await fx?.close();
});

function metered(userId: string, options: Partial<MeterMiddlewareOptions> = {}, modelId = "gpt-4o") {
  const seen: Settlement[] = [];
  const model = wrapLanguageModel({
    model: provider.chatModel(modelId),
    middleware: meterMiddleware(fx.meter, { userId, onSettle: (s) => void seen.push(s), ...options }),
  });
  return { model, seen };
}

/** The bound the middleware computes for SYSTEM + PROMPT. */
function boundFor(maxTokens: number, model = "gpt-4o") {
  return upperBound({
    messages: toChatMessages([
      { role: "system", content: SYSTEM },
      { role: "user", content: [{ type: "text", text: PROMPT }] },
    ]),
    model,
    maxTokens,
  });
}

describe("meterMiddleware with generateText", () => {
  it("commits the reported usage, refunds the rest, and reports the settlement in providerMetadata", async () => {
    const userId = await fx.freeUser();
    fx.standin.script({ usage: { prompt_tokens: 31, completion_tokens: 8 } });
    const { model, seen } = metered(userId);
    const result = await generateText({ model, system: SYSTEM, prompt: PROMPT, maxOutputTokens: 200, maxRetries: 0 });
    expect(result.text).toBe("Hello from the stand-in model.");
    const bound = boundFor(200);
    expect(seen[0]).toMatchObject({ outcome: "committed", held: bound.amount, committed: 39, refunded: bound.amount - 39, usageSource: "provider" });
    expect(result.providerMetadata?.meterkit).toMatchObject({ outcome: "committed", committed: 39 });
    expect(await fx.counter(userId, "tokens")).toEqual({ used: 39, held: 0, remaining: 20_000 - 39 });
  });

  it("throws LimitReachedError without calling the model when the bound does not fit", async () => {
    const userId = await fx.freeUser();
    const before = fx.standin.requests.length;
    const { model } = metered(userId);
    await expect(generateText({ model, prompt: PROMPT, maxOutputTokens: 50_000, maxRetries: 0 })).rejects.toBeInstanceOf(LimitReachedError);
    expect(fx.standin.requests.length).toBe(before);
  });

  it("releases the hold when the provider fails", async () => {
    const userId = await fx.freeUser();
    fx.standin.script({ failStatus: 500 });
    const { model, seen } = metered(userId);
    await expect(generateText({ model, prompt: PROMPT, maxOutputTokens: 100, maxRetries: 0 })).rejects.toThrow();
    expect(seen[0]).toMatchObject({ outcome: "released" });
    expect(await fx.counter(userId, "tokens")).toEqual({ used: 0, held: 0, remaining: 20_000 });
  });

  it("supplies maxOutputTokens from the maxTokens option when the call sets none", async () => {
    const userId = await fx.freeUser();
    const { model, seen } = metered(userId, { maxTokens: 77 });
    await generateText({ model, prompt: PROMPT, maxRetries: 0 });
    expect(fx.standin.requests.at(-1)?.body.max_tokens).toBe(77);
    expect(seen[0]?.outcome).toBe("committed");
  });

  it("refuses a call with no output limit at all", async () => {
    const userId = await fx.freeUser();
    const { model } = metered(userId);
    await expect(generateText({ model, prompt: PROMPT, maxRetries: 0 })).rejects.toMatchObject({ code: "invalid_request" });
  });

  it("charges cents at the model's exact price", async () => {
    const userId = await fx.proUser();
    fx.standin.script({ usage: { prompt_tokens: 200_000, completion_tokens: 10_000 } });
    const { model, seen } = metered(userId, { meterKey: "llm.cost", unit: "cents" }, "gpt-4.1");
    await generateText({ model, prompt: PROMPT, maxOutputTokens: 20_000, maxRetries: 0 });
    // 200 000 × $2 + 10 000 × $8 per million = $0.48 = 48¢
    expect(seen[0]).toMatchObject({ outcome: "committed", unit: "cents", committed: 48 });
    expect((await fx.counter(userId, "credits")).used).toBe(48);
  });

  it("counts the reply when the provider omits usage", async () => {
    const userId = await fx.freeUser();
    fx.standin.script({ usage: "omit", text: STORY });
    const { model, seen } = metered(userId);
    await generateText({ model, system: SYSTEM, prompt: PROMPT, maxOutputTokens: 300, maxRetries: 0 });
    expect(seen[0]).toMatchObject({ committed: boundFor(300).inputTokens + count(STORY), usageSource: "counted" });
  });
});

describe("meterMiddleware with streamText", () => {
  it("commits the final usage and passes the text through", async () => {
    const userId = await fx.freeUser();
    fx.standin.script({ text: STORY, usage: { prompt_tokens: 30, completion_tokens: 25 } });
    const { model, seen } = metered(userId);
    const result = streamText({ model, system: SYSTEM, prompt: PROMPT, maxOutputTokens: 300, maxRetries: 0 });
    expect(await result.text).toBe(STORY);
    expect(seen[0]).toMatchObject({ outcome: "committed", committed: 55, partial: false });
    expect((await result.providerMetadata)?.meterkit).toMatchObject({ committed: 55 });
    expect(await fx.counter(userId, "tokens")).toEqual({ used: 55, held: 0, remaining: 20_000 - 55 });
  });

  it("commits the input and the streamed output when the caller aborts a stalled stream", async () => {
    const userId = await fx.freeUser();
    fx.standin.script({ text: STORY, stallAfterChunks: 4 });
    const { model, seen } = metered(userId);
    const controller = new AbortController();
    const result = streamText({ model, system: SYSTEM, prompt: PROMPT, maxOutputTokens: 300, maxRetries: 0, abortSignal: controller.signal, onError: () => {} });
    let text = "";
    let parts = 0;
    for await (const delta of result.textStream) {
      text += delta;
      if (++parts === 4) setTimeout(() => controller.abort(), 50);
    }
    await expect.poll(() => seen.length).toBe(1);
    expect(text.trim().split(" ")).toHaveLength(4);
    expect(seen[0]).toMatchObject({ outcome: "committed", committed: boundFor(300).inputTokens + count(text), usageSource: "counted", partial: true });
    await expect.poll(() => fx.standin.requests.at(-1)?.closedEarly).toBe(true);
  });

  it("commits the streamed output when the provider fails mid-stream", async () => {
    const userId = await fx.freeUser();
    fx.standin.script({ text: STORY, failAfterChunks: 5 });
    const { model, seen } = metered(userId);
    const result = streamText({ model, system: SYSTEM, prompt: PROMPT, maxOutputTokens: 300, maxRetries: 0, onError: () => {} });
    let text = "";
    try {
      for await (const delta of result.textStream) text += delta;
    } catch {
      // the provider's failure
    }
    await expect.poll(() => seen.length).toBe(1);
    expect(text.trim().split(" ")).toHaveLength(5);
    expect(seen[0]).toMatchObject({ outcome: "committed", committed: boundFor(300).inputTokens + count(text), partial: true });
    expect((await fx.counter(userId, "tokens")).held).toBe(0);
  });

  it("releases the hold when the stream fails before any output", async () => {
    const userId = await fx.freeUser();
    fx.standin.script({ failStatus: 503 });
    const { model, seen } = metered(userId);
    const result = streamText({ model, prompt: PROMPT, maxOutputTokens: 300, maxRetries: 0, onError: () => {} });
    await expect(result.text).rejects.toThrow();
    await expect.poll(() => seen.length).toBe(1);
    expect(seen[0]).toMatchObject({ outcome: "released" });
    expect(await fx.counter(userId, "tokens")).toEqual({ used: 0, held: 0, remaining: 20_000 });
  });

  it("records the overage when the provider reports more than the bound", async () => {
    const userId = await fx.freeUser();
    fx.standin.script({ usage: { prompt_tokens: 20, completion_tokens: 700 } });
    const { model, seen } = metered(userId);
    const result = streamText({ model, system: SYSTEM, prompt: PROMPT, maxOutputTokens: 10, maxRetries: 0 });
    await result.text;
    expect(seen[0]).toMatchObject({ committed: 720, overage: 720 - boundFor(10).amount });
  });
});

describe("meterMiddleware with a provider that reports cache writes", () => {
  it("prices the cache writes and reads the AI SDK reports, and keeps reasoning inside the output", async () => {
    const { MockLanguageModelV3 } = await import("ai/test");
    const userId = await fx.proUser();
    const seen: Settlement[] = [];
    const model = wrapLanguageModel({
      model: new MockLanguageModelV3({
        modelId: "claude-sonnet-4-5",
        doGenerate: {
          content: [{ type: "text", text: "Cached." }],
          finishReason: { unified: "stop", raw: "end_turn" },
          usage: {
            inputTokens: { total: 42_000, noCache: 10_000, cacheRead: 20_000, cacheWrite: 12_000 },
            outputTokens: { total: 2_000, text: 1_500, reasoning: 500 },
          },
          warnings: [],
        },
      }),
      middleware: meterMiddleware(fx.meter, { userId, meterKey: "llm.cost", unit: "cents", onSettle: (s) => void seen.push(s) }),
    });
    await generateText({ model, prompt: PROMPT, maxOutputTokens: 2_000 });
    // 10 000 × $3 + 20 000 × $0.30 + 12 000 × $3.75 (5-minute writes) + 2 000 × $15 per million = 11.1¢
    expect(seen[0]).toMatchObject({ outcome: "committed", exact: "11.1", committed: 11 });
    expect(seen[0]?.usage).toMatchObject({ inputTokens: 42_000, cachedInputTokens: 20_000, cacheWriteTokens: 12_000, outputTokens: 2_000, reasoningTokens: 500 });
  });
});
