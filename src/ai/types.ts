import type { ProviderUsage } from "../core/pricing.js";
import type { PriceTable } from "../core/types.js";

/** Roles of an OpenAI-style chat message. */
export type ChatRole = "system" | "developer" | "user" | "assistant" | "tool" | "function";

/**
 * The parts of an OpenAI-style chat message that cost tokens. Content may be a string or an
 * array of parts (`text`, `image_url`, `input_audio`, `file`); unknown fields are ignored.
 */
export interface ChatMessageLike {
  role: ChatRole;
  content?: unknown;
  name?: string;
  tool_calls?: unknown;
  tool_call_id?: string;
  function_call?: unknown;
  refusal?: string | null;
}

/** The unit amounts are reserved and charged in. */
export type MeteringUnit = "tokens" | "cents";

/** Options shared by every estimate: how text is counted. */
export interface EstimateOptions {
  /** The model id (`gpt-4o`, `claude-sonnet-4-5`, …). Picks the tokenizer. Required. */
  model: string;
  /**
   * Tool (function) definitions sent with the request; counted as their JSON text plus a fixed
   * overhead, which is longer than the provider's internal rendering. Default: none.
   */
  tools?: readonly unknown[] | null;
  /**
   * Counts the tokens of a piece of text, for models whose tokenizer is not built in (pass the
   * provider's own tokenizer). Default: o200k / cl100k for OpenAI models, else the UTF-8 byte
   * length (an upper bound for any byte-level tokenizer).
   */
  tokenizer?: (text: string) => number;
  /**
   * Tokens counted for each image part. Default: the largest an image can cost on that model
   * under OpenAI's published rules (48,169 for gpt-4o-mini, 3,779 otherwise).
   */
  imageTokens?: number;
  /** The price table, consulted for the model's `encoding`. Default: `DEFAULT_PRICES`. */
  prices?: PriceTable;
}

/** What a metered call charged, reported once it settles. */
export interface Settlement {
  /**
   * `committed`: the hold was turned into usage; `released`: nothing was charged (the call
   * failed before any output); `tracked`: the hold had expired, so the usage was charged with
   * `track` instead.
   */
  outcome: "committed" | "released" | "tracked";
  reservationId: string;
  /** The price-table key the call was metered as. */
  model: string;
  /** The meter key charged. */
  meterKey: string;
  unit: MeteringUnit;
  /** The amount reserved before the call. */
  held: number;
  /** The amount charged, in `unit` (can exceed `held`: see `overage`). */
  committed: number;
  /** `held - committed` when positive: given back. */
  refunded: number;
  /** `committed - held` when positive: the provider reported more than the bound. */
  overage: number;
  /**
   * The exact cost of `usage` in `unit`, as a decimal string (`"0.0375"` cents). The ledger
   * charges whole units with a carried remainder, so `committed` differs from it by the carry.
   */
  exact: string;
  /** The tokens charged (zero for a release), cache reads and writes and reasoning broken out. */
  usage: Required<ProviderUsage>;
  /**
   * `provider`: the provider's reported usage; `counted`: counted with the tokenizer because
   * the provider reported none (stopped stream, omitted usage).
   */
  usageSource: "provider" | "counted" | "none";
  /** True when the stream ended early (consumer stopped, client disconnected, provider error). */
  partial: boolean;
  /** The meter's balance after settling, in `unit`; `null` on an unlimited counter. On a two-sided hold, the lower of the two. */
  remaining: number | null;
  /**
   * On a hold split over two meters (`meterKeys`): each counter's own numbers, by counter key.
   * The numbers above are then their sums, and `meterKey` reads `"<input>+<output>"`.
   */
  parts?: Record<string, SettlementPart>;
}

/** One counter's share of a two-sided hold's {@link Settlement}. */
export interface SettlementPart {
  /** The meter key this side was charged through. */
  meterKey: string;
  held: number;
  committed: number;
  refunded: number;
  /** `committed - held` when positive: this side used more than its bound. */
  overage: number;
}
