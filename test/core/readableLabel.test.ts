import { describe, expect, test } from "vitest";
import { readableLabel } from "../../src/core/readableLabel.js";

describe("readableLabel: the default label of a counter", () => {
  test.each([
    ["tokens", "Tokens"],
    ["input_tokens", "Input tokens"],
    ["llm_input_tokens", "Llm input tokens"],
    ["llm.output-tokens", "Llm output tokens"],
    ["inputTokens", "Input tokens"],
    ["gpt4_TPM", "Gpt4 TPM"],
    ["__credits__", "Credits"],
    ["GPU", "GPU"],
    ["x", "X"],
  ])("%s reads as %s", (key, label) => {
    expect(readableLabel(key)).toBe(label);
  });

  test("a key with no letters or digits stays as it is", () => {
    expect(readableLabel("___")).toBe("___");
  });
});
