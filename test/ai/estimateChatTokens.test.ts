import fc from "fast-check";
import { getEncoding } from "js-tiktoken";
import { describe, expect, it } from "vitest";
import { DEFAULT_PRICES } from "../../src/core/prices.js";
import { estimateChatTokens } from "../../src/ai/index.js";
import type { ChatMessageLike } from "../../src/ai/index.js";

// An independent tokenizer (js-tiktoken) as the oracle for OpenAI's documented formula:
// 3 tokens per message + role + content (+ 1 + name), and 3 to prime the reply.
const o200k = getEncoding("o200k_base");
const cl100k = getEncoding("cl100k_base");
function openAiFormula(messages: Array<{ role: string; content: string; name?: string }>, enc: typeof o200k): number {
  let n = 3;
  for (const m of messages) {
    n += 3 + enc.encode(m.role).length + enc.encode(m.content, [], []).length;
    if (m.name) n += 1 + enc.encode(m.name).length;
  }
  return n;
}

const chat: ChatMessageLike[] = [
  { role: "system", content: "You are a terse assistant. Answer in one sentence." },
  { role: "user", content: "What is the capital of Australia, and why isn't it Sydney? 🦘" },
  { role: "assistant", content: "Canberra — a compromise between Sydney and Melbourne." },
  { role: "user", content: "Merci ! Und auf Deutsch?", name: "alice" },
];

describe("estimateChatTokens", () => {
  it("counts a gpt-4o chat with o200k and OpenAI's per-message overhead, token for token", () => {
    const expected = openAiFormula(chat as Array<{ role: string; content: string; name?: string }>, o200k);
    expect(estimateChatTokens(chat, { model: "gpt-4o" })).toBe(expected);
  });

  it.each(["gpt-4.1-mini", "o3", "o4-mini", "gpt-5", "gpt-5.4-nano", "gpt-4o-2024-08-06", "openai/gpt-4o-mini"])(
    "uses o200k for %s",
    (model) => {
      expect(estimateChatTokens(chat, { model })).toBe(openAiFormula(chat as never, o200k));
    },
  );

  it.each(["gpt-4", "gpt-3.5-turbo", "gpt-4-turbo"])("uses cl100k for %s", (model) => {
    expect(estimateChatTokens(chat, { model })).toBe(openAiFormula(chat as never, cl100k));
  });

  it("gives different counts under o200k and cl100k for the same non-English text", () => {
    const messages: ChatMessageLike[] = [{ role: "user", content: "日本語のテキストはトークナイザーによって数が大きく変わります。" }];
    expect(estimateChatTokens(messages, { model: "gpt-4o" })).not.toBe(estimateChatTokens(messages, { model: "gpt-4" }));
  });

  it("counts array content parts and charges each image the largest cost OpenAI documents", () => {
    const withImage: ChatMessageLike[] = [
      { role: "user", content: [{ type: "text", text: "Describe this picture." }, { type: "image_url", image_url: { url: "https://example.com/a.png" } }] },
    ];
    const textOnly: ChatMessageLike[] = [{ role: "user", content: "Describe this picture." }];
    expect(estimateChatTokens(withImage, { model: "gpt-4o" }) - estimateChatTokens(textOnly, { model: "gpt-4o" })).toBe(3_779);
    expect(estimateChatTokens(withImage, { model: "gpt-4o-mini" }) - estimateChatTokens(textOnly, { model: "gpt-4o-mini" })).toBe(48_169);
    expect(estimateChatTokens(withImage, { model: "gpt-4o", imageTokens: 85 }) - estimateChatTokens(textOnly, { model: "gpt-4o" })).toBe(85);
  });

  it("counts tool definitions and assistant tool calls", () => {
    const messages: ChatMessageLike[] = [{ role: "user", content: "Weather in Paris?" }];
    const tools = [{ type: "function", function: { name: "get_weather", description: "Current weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }];
    const base = estimateChatTokens(messages, { model: "gpt-4o" });
    expect(estimateChatTokens(messages, { model: "gpt-4o", tools })).toBe(base + o200k.encode(JSON.stringify(tools)).length + 9);
    const call: ChatMessageLike[] = [
      ...messages,
      { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] },
    ];
    const callTokens = o200k.encode("get_weather").length + o200k.encode('{"city":"Paris"}').length + o200k.encode("call_1").length + 3;
    expect(estimateChatTokens(call, { model: "gpt-4o" })).toBe(base + 3 + o200k.encode("assistant").length + callTokens);
  });

  it("treats text that looks like a special token as ordinary text instead of throwing", () => {
    const messages: ChatMessageLike[] = [{ role: "user", content: "print('<|endoftext|>')" }];
    expect(estimateChatTokens(messages, { model: "gpt-4o" })).toBe(3 + 3 + 1 + o200k.encode("print('<|endoftext|>')", [], []).length);
  });

  it("estimates Claude and Gemini by UTF-8 bytes plus 10 per message and per reply", () => {
    const messages: ChatMessageLike[] = [{ role: "user", content: "héllo" }];
    const expected = 10 + 10 + Buffer.byteLength("user") + Buffer.byteLength("héllo");
    expect(estimateChatTokens(messages, { model: "claude-sonnet-4-5" })).toBe(expected);
    expect(estimateChatTokens(messages, { model: "gemini-2.5-flash" })).toBe(expected);
    expect(estimateChatTokens(messages, { model: "some-unknown-model" })).toBe(expected);
  });

  it("never estimates a model with a private tokenizer below what OpenAI's tokenizers count (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.record({ role: fc.constantFrom("user", "assistant", "system"), content: fc.string({ unit: "binary", maxLength: 300 }) }), { maxLength: 5 }), (messages) => {
        const typed = messages as ChatMessageLike[];
        const estimate = estimateChatTokens(typed, { model: "claude-haiku-4-5" });
        expect(estimate).toBeGreaterThanOrEqual(estimateChatTokens(typed, { model: "gpt-4o" }));
        expect(estimate).toBeGreaterThanOrEqual(estimateChatTokens(typed, { model: "gpt-4" }));
      }),
      { numRuns: 200 },
    );
  });

  it("uses the app's tokenizer when one is given", () => {
    const messages: ChatMessageLike[] = [{ role: "user", content: "one two three" }];
    const words = (text: string) => text.split(/\s+/).filter(Boolean).length;
    expect(estimateChatTokens(messages, { model: "claude-sonnet-4-5", tokenizer: words })).toBe(10 + 10 + 1 + 3);
  });

  it("takes the encoding from the price table entry when the app declares one", () => {
    const prices = { ...DEFAULT_PRICES, "my-finetune": { input: "1", output: "2", encoding: "o200k_base" as const } };
    expect(estimateChatTokens(chat, { model: "my-finetune", prices })).toBe(openAiFormula(chat as never, o200k));
  });
});
