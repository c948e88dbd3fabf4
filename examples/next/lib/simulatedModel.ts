// A language model with no network and no weights, for the example: it answers with canned
// text and reports usage counted with the real tokenizer, as a hosted model would. Swap it for
// `openai("gpt-4o-mini")` (or any AI SDK provider) and the metering stays the same.
import { MockLanguageModelV3 } from "ai/test";
import { countTokens } from "meterkit/ai";

const MODEL = "gpt-4o-mini";
const REPLY = "Every word of this reply is metered: the server reserved your prompt plus the reply limit, and charges what was actually produced.";

export function simulatedModel(): MockLanguageModelV3 {
  return new MockLanguageModelV3({
    provider: "simulated",
    modelId: MODEL,
    doGenerate: async ({ prompt, maxOutputTokens }) => {
      const input = JSON.stringify(prompt);
      const words = REPLY.split(" ");
      let text = "";
      for (const word of words) {
        const next = text ? `${text} ${word}` : word;
        if (maxOutputTokens !== undefined && countTokens(next, { model: MODEL }) > maxOutputTokens) break;
        text = next;
      }
      const output = countTokens(text, { model: MODEL });
      const inputTokens = countTokens(input, { model: MODEL });
      return {
        content: [{ type: "text", text }],
        finishReason: { unified: text === REPLY ? "stop" : "length", raw: undefined },
        usage: {
          inputTokens: { total: inputTokens, noCache: inputTokens, cacheRead: undefined, cacheWrite: undefined },
          outputTokens: { total: output, text: output, reasoning: undefined },
        },
        warnings: [],
      };
    },
  });
}
