/**
 * The default label of a counter: a readable form of its key. The rule, kept simple so it can
 * be predicted: the key splits into words at `_`, `-`, `.`, spaces and a lower-case letter or
 * digit followed by a capital (`inputTokens`); the words join with single spaces; the first
 * letter is upper-cased; a word split off a camel-case key is lower-cased unless it is all
 * capitals. `tokens` → `Tokens`, `llm_input_tokens` → `Llm input tokens`, `inputTokens` →
 * `Input tokens`, `gpt4_TPM` → `Gpt4 TPM`. Pass `label` to a limit group for anything else
 * (`"LLM input tokens"`). A key with no letters or digits is returned unchanged.
 */
export function readableLabel(key: string): string {
  const words: string[] = [];
  for (const part of key.split(/[\s_.-]+/)) {
    if (part === "") continue;
    const pieces = part.split(/(?<=[\p{Ll}\p{Nd}])(?=\p{Lu})/u);
    pieces.forEach((piece, i) => words.push(i > 0 && piece !== piece.toUpperCase() ? piece.toLowerCase() : piece));
  }
  if (words.length === 0) return key;
  const text = words.join(" ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}
