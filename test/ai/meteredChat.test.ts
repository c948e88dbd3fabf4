import { getEncoding } from "js-tiktoken";
import OpenAI from "openai";
import type { ChatCompletionChunk, ChatCompletionMessageParam } from "openai/resources/chat/completions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LimitReachedError, MeterError, errorFromBody } from "../../src/core/errors.js";
import type { MeterApi } from "../../src/core/types.js";
import { meteredChat, upperBound } from "../../src/ai/index.js";
import type { Settlement } from "../../src/ai/index.js";
import { setupAiFixture, type AiFixture } from "./helpers.js";

const o200k = getEncoding("o200k_base");
const count = (text: string) => o200k.encode(text, [], []).length;

let fx: AiFixture;
let openai: OpenAI;
beforeAll(async () => {
  fx = await setupAiFixture();
  openai = new OpenAI({ baseURL: fx.standin.baseURL, apiKey: "sk-test", maxRetries: 0 });
});
afterAll(async () => {
  await fx?.close();
});

const messages: ChatCompletionMessageParam[] = [
  { role: "system", content: "You are a helpful assistant." },
  { role: "user", content: "Tell me a short story about a lighthouse." },
];
const TWENTY_WORDS = "Once upon a time a lighthouse keeper counted every wave that broke on the rocks below and never lost count even once.";

/** The settlement, via onSettle. */
function capture() {
  const seen: Settlement[] = [];
  return { seen, onSettle: (s: Settlement) => void seen.push(s) };
}

describe("meteredChat, plain completions", () => {
  it("commits the provider's reported usage and refunds the rest of the hold", async () => {
    const userId = await fx.freeUser();
    fx.standin.script({ usage: { prompt_tokens: 42, completion_tokens: 7 } });
    const { seen, onSettle } = capture();
    const bound = upperBound({ messages, model: "gpt-4o", maxTokens: 200 });

    const completion = await meteredChat(fx.meter, userId, { model: "gpt-4o", messages, max_tokens: 200 }, (p, { signal }) => openai.chat.completions.create(p, { signal }), { onSettle });

    expect(completion.choices[0]?.message.content).toBe("Hello from the stand-in model.");
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ outcome: "committed", held: bound.amount, committed: 49, refunded: bound.amount - 49, overage: 0, usageSource: "provider", partial: false });
    expect(await fx.counter(userId, "tokens")).toEqual({ used: 49, held: 0, remaining: 20_000 - 49 });
  });

  it("denies with LimitReachedError and never calls the model when the bound exceeds the balance", async () => {
    const userId = await fx.freeUser();
    const before = fx.standin.requests.length;
    const call = meteredChat(fx.meter, userId, { model: "gpt-4o", messages, max_tokens: 25_000 }, (p) => openai.chat.completions.create(p));
    await expect(call).rejects.toBeInstanceOf(LimitReachedError);
    await expect(call).rejects.toMatchObject({ counter: "tokens", remaining: 20_000 });
    expect(fx.standin.requests.length).toBe(before);
    expect(await fx.counter(userId, "tokens")).toEqual({ used: 0, held: 0, remaining: 20_000 });
  });

  it("releases the hold when the provider fails before any output", async () => {
    const userId = await fx.freeUser();
    fx.standin.script({ failStatus: 500 });
    const { seen, onSettle } = capture();
    const call = meteredChat(fx.meter, userId, { model: "gpt-4o", messages, max_tokens: 100 }, (p) => openai.chat.completions.create(p), { onSettle });
    await expect(call).rejects.toBeInstanceOf(OpenAI.InternalServerError);
    expect(seen[0]).toMatchObject({ outcome: "released", committed: 0 });
    expect(await fx.counter(userId, "tokens")).toEqual({ used: 0, held: 0, remaining: 20_000 });
  });

  it("records the overage when the provider reports more than the bound", async () => {
    const userId = await fx.freeUser();
    fx.standin.script({ usage: { prompt_tokens: 30, completion_tokens: 500 } });
    const { seen, onSettle } = capture();
    const bound = upperBound({ messages, model: "gpt-4o", maxTokens: 10 });
    await meteredChat(fx.meter, userId, { model: "gpt-4o", messages, max_tokens: 10 }, (p) => openai.chat.completions.create(p), { onSettle });
    expect(seen[0]).toMatchObject({ outcome: "committed", held: bound.amount, committed: 530, refunded: 0, overage: 530 - bound.amount });
    expect((await fx.counter(userId, "tokens")).used).toBe(530);
  });

  it("counts the reply with the tokenizer when the provider omits usage", async () => {
    const userId = await fx.freeUser();
    fx.standin.script({ usage: "omit", text: TWENTY_WORDS });
    const { seen, onSettle } = capture();
    const bound = upperBound({ messages, model: "gpt-4o-mini", maxTokens: 300 });
    await meteredChat(fx.meter, userId, { model: "gpt-4o-mini", messages, max_completion_tokens: 300 }, (p) => openai.chat.completions.create(p), { onSettle });
    const expected = bound.inputTokens + count(TWENTY_WORDS);
    expect(seen[0]).toMatchObject({ outcome: "committed", committed: expected, usageSource: "counted" });
    expect((await fx.counter(userId, "tokens")).used).toBe(expected);
  });

  it("charges a cents counter the exact price of the tokens for the model", async () => {
    const userId = await fx.proUser();
    fx.standin.script({ usage: { prompt_tokens: 100_000, completion_tokens: 20_000, cached_tokens: 40_000 } });
    const { seen, onSettle } = capture();
    await meteredChat(fx.meter, userId, { model: "gpt-4o", messages, max_tokens: 30_000 }, (p) => openai.chat.completions.create(p), {
      meterKey: "llm.cost",
      unit: "cents",
      onSettle,
    });
    // 60 000 × $2.50 + 40 000 × $1.25 + 20 000 × $10 per million = $0.15 + $0.05 + $0.20 = 40¢
    expect(seen[0]).toMatchObject({ outcome: "committed", unit: "cents", committed: 40, held: 31, overage: 9 });
    expect(await fx.counter(userId, "credits")).toEqual({ used: 40, held: 0, remaining: 460 });
  });

  it("refuses a request without a token limit, unless maxTokens is given and then sent", async () => {
    const userId = await fx.freeUser();
    const noLimit = meteredChat(fx.meter, userId, { model: "gpt-4o", messages }, (p) => openai.chat.completions.create(p));
    await expect(noLimit).rejects.toMatchObject({ code: "invalid_request" });
    await meteredChat(fx.meter, userId, { model: "gpt-4o", messages }, (p) => openai.chat.completions.create(p), { maxTokens: 64 });
    expect(fx.standin.requests.at(-1)?.body.max_completion_tokens).toBe(64);
  });

  it("charges the tokens with track when the hold expired while the model ran", async () => {
    const userId = await fx.freeUser();
    fx.standin.script({ delayMs: 150, usage: { prompt_tokens: 40, completion_tokens: 9 } });
    const { seen, onSettle } = capture();
    await meteredChat(fx.meter, userId, { model: "gpt-4o", messages, max_tokens: 100 }, (p) => openai.chat.completions.create(p), { ttl: 20, onSettle });
    expect(seen[0]).toMatchObject({ outcome: "tracked", committed: 49 });
    expect(await fx.counter(userId, "tokens")).toEqual({ used: 49, held: 0, remaining: 20_000 - 49 });
  });

  it("works through a remote meter whose answers and errors cross the wire as JSON", async () => {
    // What meterkit/client does: JSON bodies both ways, errors rebuilt with errorFromBody.
    const wire = <T>(p: Promise<T>): Promise<T> =>
      p.then(
        (v) => JSON.parse(JSON.stringify(v)) as T,
        (err: unknown) => {
          throw err instanceof MeterError ? errorFromBody(JSON.parse(JSON.stringify(err.toJSON())), err.status) : err;
        },
      );
    const remote: MeterApi = {
      reserve: ((...a: [string, string, number]) => wire(fx.meter.reserve(...a))) as MeterApi["reserve"],
      commit: (...a) => wire(fx.meter.commit(...a)),
      release: (...a) => wire(fx.meter.release(...a)),
      track: (...a) => wire(fx.meter.track(...a)),
      grant: (...a) => wire(fx.meter.grant(...a)),
      usage: (...a) => wire(fx.meter.usage(...a)),
      upsertSubscription: (...a) => wire(fx.meter.upsertSubscription(...a)),
    };
    const userId = await fx.freeUser();
    fx.standin.script({ usage: { prompt_tokens: 12, completion_tokens: 3 } }, { delayMs: 150, usage: { prompt_tokens: 12, completion_tokens: 3 } });
    const { seen, onSettle } = capture();
    await meteredChat(remote, userId, { model: "gpt-4o", messages, max_tokens: 100 }, (p) => openai.chat.completions.create(p), { onSettle });
    await meteredChat(remote, userId, { model: "gpt-4o", messages, max_tokens: 100 }, (p) => openai.chat.completions.create(p), { onSettle, ttl: 20 });
    expect(seen.map((s) => [s.outcome, s.committed])).toEqual([
      ["committed", 15],
      ["tracked", 15],
    ]);
    await expect(meteredChat(remote, userId, { model: "gpt-4o", messages, max_tokens: 30_000 }, (p) => openai.chat.completions.create(p))).rejects.toBeInstanceOf(LimitReachedError);
    expect(await fx.counter(userId, "tokens")).toEqual({ used: 30, held: 0, remaining: 20_000 - 30 });
  });

  it("rejects an empty user id before reserving anything", async () => {
    await expect(meteredChat(fx.meter, "", { model: "gpt-4o", messages, max_tokens: 5 }, (p) => openai.chat.completions.create(p))).rejects.toBeInstanceOf(MeterError);
  });
});

describe("meteredChat, streams", () => {
  it("passes chunks through unchanged, asks for usage, and commits the final usage chunk", async () => {
    const userId = await fx.freeUser();
    fx.standin.script({ text: TWENTY_WORDS, usage: { prompt_tokens: 25, completion_tokens: 24 } });
    const stream = await meteredChat(fx.meter, userId, { model: "gpt-4o", messages, max_tokens: 300, stream: true }, (p, { signal }) =>
      openai.chat.completions.create(p, { signal }),
    );
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    expect(text).toBe(TWENTY_WORDS);
    expect(fx.standin.requests.at(-1)?.body.stream_options).toEqual({ include_usage: true });
    const s = await stream.settled;
    expect(s).toMatchObject({ outcome: "committed", committed: 49, usageSource: "provider", partial: false });
    expect(await fx.counter(userId, "tokens")).toEqual({ used: 49, held: 0, remaining: 20_000 - 49 });
  });

  it("commits the input and the output produced so far when the consumer stops reading", async () => {
    const userId = await fx.freeUser();
    fx.standin.script({ text: TWENTY_WORDS, chunkDelayMs: 5 });
    const stream = await meteredChat(fx.meter, userId, { model: "gpt-4o", messages, max_tokens: 300, stream: true }, (p, { signal }) =>
      openai.chat.completions.create(p, { signal }),
    );
    let text = "";
    let contentChunks = 0;
    for await (const chunk of stream) {
      const piece = chunk.choices[0]?.delta.content;
      if (piece) {
        text += piece;
        if (++contentChunks === 5) break;
      }
    }
    const s = await stream.settled;
    const bound = upperBound({ messages, model: "gpt-4o", maxTokens: 300 });
    expect(s).toMatchObject({ outcome: "committed", committed: bound.inputTokens + count(text), usageSource: "counted", partial: true });
    expect(await fx.counter(userId, "tokens")).toEqual({ used: bound.inputTokens + count(text), held: 0, remaining: 20_000 - bound.inputTokens - count(text) });
    await expect.poll(() => fx.standin.requests.at(-1)?.closedEarly).toBe(true);
  });

  it("ends a stalled stream on the abort signal and commits what was produced, cancelling the request", async () => {
    const userId = await fx.freeUser();
    fx.standin.script({ text: TWENTY_WORDS, stallAfterChunks: 3 });
    const controller = new AbortController();
    const stream = await meteredChat(
      fx.meter,
      userId,
      { model: "gpt-4o", messages, max_tokens: 300, stream: true },
      (p, { signal }) => openai.chat.completions.create(p, { signal }),
      { signal: controller.signal },
    );
    let text = "";
    let contentChunks = 0;
    for await (const chunk of stream) {
      const piece = chunk.choices[0]?.delta.content;
      if (piece) {
        text += piece;
        if (++contentChunks === 3) setTimeout(() => controller.abort(), 50);
      }
    }
    expect(contentChunks).toBe(3);
    const s = await stream.settled;
    const bound = upperBound({ messages, model: "gpt-4o", maxTokens: 300 });
    expect(s).toMatchObject({ outcome: "committed", committed: bound.inputTokens + count(text), partial: true });
    await expect.poll(() => fx.standin.requests.at(-1)?.closedEarly).toBe(true);
  });

  it("commits the produced output and rethrows when the provider fails mid-stream", async () => {
    const userId = await fx.freeUser();
    fx.standin.script({ text: TWENTY_WORDS, failAfterChunks: 4 });
    const stream = await meteredChat(fx.meter, userId, { model: "gpt-4o", messages, max_tokens: 300, stream: true }, (p, { signal }) =>
      openai.chat.completions.create(p, { signal }),
    );
    let text = "";
    await expect(
      (async () => {
        for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
      })(),
    ).rejects.toThrow();
    expect(text.split(" ").filter(Boolean)).toHaveLength(4);
    const bound = upperBound({ messages, model: "gpt-4o", maxTokens: 300 });
    expect(await stream.settled).toMatchObject({ outcome: "committed", committed: bound.inputTokens + count(text), partial: true });
    expect((await fx.counter(userId, "tokens")).held).toBe(0);
  });

  it("releases the hold when the stream fails before any output", async () => {
    const userId = await fx.freeUser();
    fx.standin.script({ failAfterChunks: 0 });
    const stream = await meteredChat(fx.meter, userId, { model: "gpt-4o", messages, max_tokens: 300, stream: true }, (p, { signal }) =>
      openai.chat.completions.create(p, { signal }),
    );
    await expect(
      (async () => {
        for await (const _chunk of stream) {
          // the role chunk carries no output
        }
      })(),
    ).rejects.toThrow();
    expect(await stream.settled).toMatchObject({ outcome: "released", committed: 0 });
    expect(await fx.counter(userId, "tokens")).toEqual({ used: 0, held: 0, remaining: 20_000 });
  });

  it("counts the whole reply when the provider omits the usage chunk", async () => {
    const userId = await fx.freeUser();
    fx.standin.script({ text: TWENTY_WORDS, usage: "omit" });
    const stream = await meteredChat(fx.meter, userId, { model: "gpt-4.1-nano", messages, max_tokens: 300, stream: true }, (p) => openai.chat.completions.create(p));
    const chunks: ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const bound = upperBound({ messages, model: "gpt-4.1-nano", maxTokens: 300 });
    expect(await stream.settled).toMatchObject({ outcome: "committed", committed: bound.inputTokens + count(TWENTY_WORDS), usageSource: "counted", partial: false });
  });

  it("records the overage of a stream whose final usage exceeds the bound", async () => {
    const userId = await fx.freeUser();
    fx.standin.script({ usage: { prompt_tokens: 20, completion_tokens: 900 } });
    const stream = await meteredChat(fx.meter, userId, { model: "gpt-4o", messages, max_tokens: 5, stream: true }, (p) => openai.chat.completions.create(p));
    for await (const _ of stream) {
      // drain
    }
    const bound = upperBound({ messages, model: "gpt-4o", maxTokens: 5 });
    expect(await stream.settled).toMatchObject({ committed: 920, overage: 920 - bound.amount, refunded: 0 });
  });

  it("settles once: abort() after the end returns the first settlement and charges nothing more", async () => {
    const userId = await fx.freeUser();
    fx.standin.script({ usage: { prompt_tokens: 10, completion_tokens: 5 } });
    const stream = await meteredChat(fx.meter, userId, { model: "gpt-4o", messages, max_tokens: 50, stream: true }, (p) => openai.chat.completions.create(p));
    for await (const _ of stream) {
      // drain
    }
    const first = await stream.settled;
    expect(await stream.abort()).toBe(first);
    expect((await fx.counter(userId, "tokens")).used).toBe(15);
  });
});
