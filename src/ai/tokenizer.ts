import { createRequire } from "node:module";
import type { ModelPrice } from "../core/types.js";

/** How a model's text is counted: a public OpenAI encoding, or the conservative estimate. */
export type Encoding = NonNullable<ModelPrice["encoding"]>;

// Text that looks like a special token (`<|endoftext|>`) is ordinary text in a user's prompt:
// count it as such instead of throwing, as the provider does.
const PLAIN_TEXT = { disallowedSpecial: new Set<string>() };

type CountFn = (text: string, options: typeof PLAIN_TEXT) => number;
const counters = new Map<string, CountFn>();

// gpt-tokenizer (≈27 MB of rank tables) is an optional peer: only apps that count OpenAI tokens
// install it. It is loaded on first use, synchronously, so the API stays synchronous and the
// entry stays require()-able; a missing install names the command that fixes it.
function loadCounter(encoding: "o200k_base" | "cl100k_base"): CountFn {
  let count = counters.get(encoding);
  if (!count) {
    try {
      count = (createRequire(import.meta.url)(`gpt-tokenizer/encoding/${encoding}`) as { countTokens: CountFn }).countTokens;
    } catch (err) {
      throw new Error(
        `meterkit/ai: counting ${encoding} tokens needs the optional peer dependency gpt-tokenizer. Install it: npm install gpt-tokenizer`,
        { cause: err },
      );
    }
    counters.set(encoding, count);
  }
  return count;
}

const O200K_MODELS = /^(gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|gpt-oss|o1|o3|o4|codex)/;
const CL100K_MODELS = /^(gpt-4|gpt-3\.5|gpt-35|text-embedding-(ada|3))/;

/**
 * The encoding of a model: the price entry's `encoding` when given, else by name (o200k for
 * gpt-4o / 4.1 / 4.5 / gpt-5 / o-series, cl100k for gpt-4 and gpt-3.5), else `estimate`.
 */
export function encodingForModel(model: string, price?: ModelPrice): Encoding {
  if (price?.encoding) return price.encoding;
  const bare = model.includes("/") ? model.slice(model.lastIndexOf("/") + 1) : model;
  if (O200K_MODELS.test(bare)) return "o200k_base";
  if (CL100K_MODELS.test(bare)) return "cl100k_base";
  return "estimate";
}

/**
 * Tokens of `text` under `encoding`. For `estimate` (tokenizers that are not public) this is
 * the UTF-8 byte length: every token of a byte-level BPE or byte-fallback tokenizer covers at
 * least one byte, so the count never falls below the real one.
 */
export function countText(text: string, encoding: Encoding): number {
  if (text.length === 0) return 0;
  switch (encoding) {
    case "o200k_base":
    case "cl100k_base":
      return loadCounter(encoding)(text, PLAIN_TEXT);
    default:
      return utf8Length(text);
  }
}

export function utf8Length(text: string): number {
  return Buffer.byteLength(text, "utf8");
}

/** A function that counts the tokens of a piece of text. */
export type TextCounter = (text: string) => number;

export function textCounter(encoding: Encoding, custom?: TextCounter): TextCounter {
  if (custom) return custom;
  return (text) => countText(text, encoding);
}
