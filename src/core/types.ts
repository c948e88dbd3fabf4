/** The unit of a counter: tokens, cents (money in the smallest currency unit), or a custom unit name. */
export type Unit = "tokens" | "cents" | (string & {});

/**
 * How long a quota lasts before it renews. `none` never renews. `hour` and `minute` are rate
 * windows ("20 requests a minute"): fixed windows on the database clock, not sliding ones.
 */
export type Period = "month" | "week" | "day" | "hour" | "minute" | "none";

/**
 * Where periods start: `calendar` (UTC month / ISO week starting Monday / day / top of the
 * hour / top of the minute) or `subscription_start` (the subscription's start; a Jan 31 start
 * renews on the last day of shorter months, then on the 31st again; weeks, days, hours and
 * minutes follow every 7 days / 24 h / 60 min / 60 s from the start).
 */
export type Anchor = "calendar" | "subscription_start";

/** A limit group (counter) of a plan. */
export interface LimitGroup {
  /**
   * `"quota"` (default): an allowance of units per period. `"concurrency"`: at most `quota`
   * reservations open at once ("3 generations in flight"); each open hold takes one slot
   * whatever its amount, and commit, release or expiry frees it. A commit on it records no
   * usage, and it takes no tracks, grants or adjustments. Its period is `"none"`; its unit
   * defaults to `"calls"`. A counter has the same kind in every plan.
   */
  kind?: "quota" | "concurrency";
  /** Human label shown in the UI. Default: a readable form of the key (`tokens` → `"Tokens"`, `llm_input_tokens` → `"Llm input tokens"`; see `readableLabel`). */
  label?: string;
  /** The base unit of every amount in this group. Default `"tokens"`. */
  unit?: Unit;
  /**
   * Allowance per period, in base units (a safe integer ≥ 0), or `null` for an unlimited
   * counter: usage is still recorded, counted and reported, and nothing is ever refused.
   */
  quota: number | null;
  /** Default `"month"`. */
  period?: Period;
  /** Default `"calendar"`. */
  anchor?: Anchor;
  /**
   * What happens when a commit reports more than its hold, or a track exceeds the balance:
   * `"record"` (default) books the whole amount as overage usage, `"reject"` refuses a track
   * that does not fit with `limit_reached` (a commit's overage is always recorded: the tokens
   * were already spent).
   */
  overage?: "record" | "reject";
  /**
   * Currency of a `cents` group, for display (ISO 4217, default `"usd"`).
   */
  currency?: string;
}

/** A plan: a set of limit groups keyed by counter key (`tokens`, `credits`, …). */
export interface PlanDefinition {
  /** Human label. Default: the plan id. */
  label?: string;
  limits: Record<string, LimitGroup>;
  /**
   * Billed after the fact: this plan's closed periods of the counters in `stripe.meters` are
   * pushed to Stripe Meters. Users of other plans sharing a counter are never pushed. Default false.
   */
  postpaid?: boolean;
}

/**
 * A meter maps an event key (`llm.tokens`) to a counter. A key ending in `.refund` gives back
 * to the counter of the key without the suffix and needs no definition of its own.
 */
export interface MeterDefinition {
  /** The counter key this event is charged to. */
  counter: string;
  /**
   * For a `cents` counter fed with token amounts: which price of the model's entry in the price
   * table converts one token to money. Omit when amounts are already in the counter's unit.
   */
  price?: "input" | "cachedInput" | "output";
  /**
   * Which side of a commit's `{ usage }` this meter counts in a multi-counter reservation:
   * `"input"` (input tokens, cached included) or `"output"`. Default: the side its `price`
   * names (`cachedInput` counts as input), else both.
   */
  counts?: "input" | "output";
}

/** One model's prices, in currency units (e.g. US dollars) per million tokens, as exact decimal strings. */
export interface ModelPrice {
  /** Price of a million input (prompt) tokens, e.g. `"2.50"`. */
  input: string;
  /** Price of a million cached input tokens (cache reads). Default: the input price. */
  cachedInput?: string;
  /** Price of a million input tokens written to the prompt cache with the default (5-minute) lifetime. Default: the input price. */
  cacheWrite?: string;
  /** Price of a million input tokens written to the prompt cache for one hour. Default: `cacheWrite`, else the input price. */
  cacheWrite1h?: string;
  /** Price of a million output (completion) tokens; reasoning (thinking) tokens are output tokens. */
  output: string;
  /**
   * Long-context rates: a call whose prompt (all input tokens: cached, cache writes and the
   * rest) has more than `above` tokens pays the prices of the tier with the largest such
   * `above`, on every token of the call. Default: none.
   */
  tiers?: readonly PriceTier[];
  /** ISO date the price took effect (or was last checked), for the record. */
  effective?: string;
  /** Where the price was read (the provider's pricing page), for the record. */
  source?: string;
  /** Tokenizer family, when known (`o200k_base`, `cl100k_base`); unknown families are estimated conservatively. */
  encoding?: "o200k_base" | "cl100k_base" | "estimate";
}

/** The prices of a model for prompts longer than `above` tokens (see {@link ModelPrice.tiers}). */
export interface PriceTier {
  /** The tier applies to prompts of more than this many input tokens. */
  above: number;
  input: string;
  /** Default: this tier's input price. */
  cachedInput?: string;
  /** Default: this tier's input price. */
  cacheWrite?: string;
  /** Default: this tier's `cacheWrite`, else its input price. */
  cacheWrite1h?: string;
  output: string;
}

/** Model id → prices. */
export type PriceTable = Record<string, ModelPrice>;

/** Token counts a provider reports for one call. */
export interface TokenUsage {
  inputTokens: number;
  /** The part of `inputTokens` served from the provider's prompt cache. Default 0. */
  cachedInputTokens?: number;
  outputTokens: number;
}

/** One counter of a user's usage, on the wire (`GET /usage`). */
export interface CounterUsage {
  key: string;
  label: string;
  unit: Unit;
  /** Currency of a `cents` counter (ISO 4217 lower case). */
  currency?: string;
  /** Allowance this period; `null` on an unlimited counter. */
  quota: number | null;
  /** Credits from grants available this period (unexpired grants, including what this period drew from them). */
  granted: number;
  /** Committed usage this period. */
  used: number;
  /** Open, unexpired holds. */
  held: number;
  /** `max(0, quota + granted - used - held)`; `null` on an unlimited counter. */
  remaining: number | null;
  /**
   * Credits still owed from a refunded or disputed pack whose credits were already spent
   * (absent when nothing is owed). The next credits pay it, once; see docs/stripe.md.
   */
  debt?: number;
  periodStart: string | null;
  periodEnd: string | null;
  /**
   * `"concurrency"` on a concurrency group (absent otherwise): `held` is the reservations in
   * flight, `used` and `granted` are 0, `remaining` is `quota - held`.
   */
  kind?: "concurrency";
}

/** A user's balances, on the wire. */
export interface Usage {
  userId: string;
  planId: string;
  /** Grows with every change to the user's balances; a newer Usage always has a larger version. */
  version: number;
  updatedAt: string;
  counters: CounterUsage[];
}

/** Options of {@link MeterApi.reserve}. */
export interface ReserveOptions {
  /** The model the hold is for (recorded; converts tokens to money on `price` meters). */
  model?: string;
  /** How long the hold lives, in milliseconds. Default: the meter's `holdTtl`. Max 24 h. */
  ttl?: number;
  /** Same key → the first result again (including a denial), written once. */
  idempotencyKey?: string;
  /** Free-form JSON recorded with the hold. */
  metadata?: Record<string, unknown>;
}

export type ReserveResult =
  | { allowed: true; reservationId: string; remaining: number | null; expiresAt: string; amount: number; counter: string }
  | {
      allowed: false;
      reason: "limit_reached";
      remaining: number;
      required: number;
      counter: string;
      /**
       * Seconds until a retry can succeed, when waiting helps: the counter renews at the end of
       * its period and its next allowance (plus grants still valid then) covers the request.
       * Absent when waiting would not help (period `none`, a request beyond the allowance).
       */
      retryAfter?: number;
    };

/**
 * The answer to a multi-counter `reserve(userId, { meterKey: amount, ... })`: one reservation
 * id for every counter, or a denial naming the counter that could not hold its amount (then
 * nothing was held).
 */
export type MultiReserveResult =
  | {
      allowed: true;
      reservationId: string;
      expiresAt: string;
      /** Counter key → what it holds and what is left on it (`null`: unlimited). */
      parts: Record<string, { meterKey: string; amount: number; remaining: number | null }>;
    }
  | Extract<ReserveResult, { allowed: false }>;

/** Options of {@link MeterApi.commit}. */
export interface CommitOptions {
  /**
   * What was really used, in the meter's unit. Default: the whole hold. On a multi-counter
   * reservation, an object of meter key (or counter key) → amount; a part not named commits
   * its whole hold.
   */
  actual?: number | Record<string, number>;
  /** Instead of `actual`: the provider's token counts; a `cents` counter prices them exactly for the hold's model. */
  usage?: TokenUsage;
}

export interface CommitResult {
  reservationId: string;
  /** The user the hold belonged to. */
  userId: string;
  status: "committed";
  /** Amount held. */
  held: number;
  /** Amount charged (can exceed `held`: the excess is `overage`). */
  committed: number;
  /** `held - committed` when positive: given back at once. */
  refunded: number;
  /** `committed - held` when positive: recorded as usage beyond the hold. */
  overage: number;
  /** What the user has left; `null` on an unlimited counter. */
  remaining: number | null;
  /**
   * On a multi-counter reservation: each counter's own result. The numbers above are then
   * sums over the parts (meaningful when they share a unit) and `remaining` is the least.
   */
  parts?: Record<string, Omit<CommitResult, "userId" | "parts">>;
}

export interface ReleaseResult {
  reservationId: string;
  userId: string;
  status: "released";
  released: number;
  /** What the user has left; `null` on an unlimited counter. */
  remaining: number | null;
  /** On a multi-counter reservation: each counter's own result (`released` is then the sum). */
  parts?: Record<string, Omit<ReleaseResult, "userId" | "parts">>;
}

/** Options of {@link MeterApi.track}. */
export interface TrackOptions {
  /** The hold this usage belongs to, for the record (the seed's refund pattern). */
  reservationId?: string;
  idempotencyKey?: string;
  model?: string;
  metadata?: Record<string, unknown>;
}

export interface TrackResult {
  /** Amount charged (negative for a refund). */
  amount: number;
  counter: string;
  /** What the user has left; `null` on an unlimited counter. */
  remaining: number | null;
}

/** Options of {@link MeterApi.grant}. */
export interface GrantOptions {
  /** Required for purchases (e.g. the Checkout Session id): the same key grants once. */
  idempotencyKey?: string;
  /** When unspent credits of this grant lapse (ISO string or Date). Default: never. */
  expiresAt?: string | Date;
  /** Where it came from: `"purchase"`, `"promo"`, … Default `"manual"`. */
  source?: string;
  metadata?: Record<string, unknown>;
}

export interface GrantResult {
  grantId: string;
  amount: number;
  counter: string;
  /** What the user has left; `null` on an unlimited counter. */
  remaining: number | null;
  /** Credits of this grant that paid an open debt at once (absent when none). */
  debtPaid?: number;
}

/** Options of {@link MeterApi.adjust}. */
export interface AdjustOptions {
  /** Why (kept on the entry). Required. */
  reason: string;
  idempotencyKey?: string;
}

export interface AdjustResult {
  amount: number;
  counter: string;
  /** What the user has left; `null` on an unlimited counter. */
  remaining: number | null;
}

/** Arguments of {@link MeterApi.upsertSubscription}. */
export interface SubscriptionInput {
  userId: string;
  planId: string;
  /**
   * Per-counter overrides of the plan's limits, e.g. `{ tokens: { quota: 50000 } }`;
   * `quota: null` makes the counter unlimited for this user. Unknown fields are refused.
   */
  customLimits?: Record<string, { quota: number | null }>;
  /** Start of the subscription (anchors `subscription_start` periods). Default: now, or the existing start. */
  startedAt?: string | Date;
}

export interface Subscription {
  userId: string;
  planId: string;
  customLimits: Record<string, { quota: number | null }>;
  startedAt: string;
}

/**
 * The ledger operations, the same whether local (`createMeter`) or remote (`createMeterClient`).
 */
export interface MeterApi {
  reserve(userId: string, meterKey: string, amount: number, options?: ReserveOptions): Promise<ReserveResult>;
  /**
   * Holds on several counters at once, all or nothing, under one reservation id:
   * `{ "llm.input": 1200, "llm.output": 800 }` (meter key → amount).
   */
  reserve(userId: string, amounts: Record<string, number>, options?: ReserveOptions): Promise<MultiReserveResult>;
  commit(reservationId: string, options?: CommitOptions): Promise<CommitResult>;
  release(reservationId: string): Promise<ReleaseResult>;
  track(userId: string, meterKey: string, amount: number, options?: TrackOptions): Promise<TrackResult>;
  grant(userId: string, counterKey: string, amount: number, options?: GrantOptions): Promise<GrantResult>;
  usage(userId: string): Promise<Usage>;
  upsertSubscription(input: SubscriptionInput): Promise<Subscription>;
}

/** A credit pack users can buy (`GET /packs`). */
export interface Pack {
  id: string;
  label: string;
  /** The counter the credits go to. */
  counter: string;
  /** Credits granted, in the counter's base unit. */
  amount: number;
  /** What it costs, in the currency's minor unit (cents). */
  price: { amount: number; currency: string };
}
