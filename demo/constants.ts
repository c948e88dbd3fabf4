/*
 * Constants the server and the page share. Browser-safe: no Node APIs here.
 */

/**
 * The demo's one user. The demo has no sign-in: every request is this user
 * (`identify: () => DEMO_USER`), so two tabs share one balance. A real app returns the user
 * of its own session instead.
 */
export const DEMO_USER = "demo-user";

/** The simulated model answers as this model, so the real o200k tokenizer counts its text. */
export const DEMO_MODEL = "gpt-4o-mini";

/** Sent before the conversation on every request; it costs tokens like any prompt. */
export const SYSTEM_PROMPT = "You are a helpful assistant in the meterkit demo.";

/** Reply limits the page offers; the server accepts any whole number from 1 to MAX_REPLY_TOKENS. */
export const REPLY_LIMITS = [100, 300, 600, 1000] as const;
export const DEFAULT_REPLY_LIMIT = 300;
export const MAX_REPLY_TOKENS = 4000;

/** Prompts offered on the empty chat page. */
export const SUGGESTED_PROMPTS = ["What does meterkit do?", "How are tokens counted?", "Write a long story about a metered model"];

/**
 * What the Usage page offers for auto top-up: thresholds (tokens left), the one proposed first,
 * and the ceiling charged automatically per month (cents; at least the dearest pack's price).
 */
export const AUTO_TOP_UP_THRESHOLDS = [500, 1000, 2000, 5000] as const;
export const DEFAULT_AUTO_TOP_UP_THRESHOLD = 1000;
export const AUTO_TOP_UP_MAX_PER_MONTH = 4000;
