import { createElement, type ReactNode } from "react";
import type { AutoTopUpPauseReason } from "../core/autoTopUp.js";
import type { EntryKind } from "./useEntries.js";

/**
 * A text that depends on a count, by CLDR plural category (`Intl.PluralRules`): `{ one: "token",
 * other: "tokens" }` in English, up to `zero`/`one`/`two`/`few`/`many`/`other` in Arabic.
 * `other` is required: it is what every category falls back to.
 */
export type PluralText = { other: string } & Partial<Record<Intl.LDMLPluralRule, string>>;

/**
 * Every built-in string of the kit, in one typed object (`MeterProvider messages={…}`).
 * Templates name their values in braces (`"{remaining} left"`); amounts, dates and labels are
 * put in `<bdi>` so right-to-left text does not reorder them. Each component carries the
 * English defaults of its own strings, so a page that shows only the badge ships only its
 * strings.
 */
export interface MeterMessages {
  /**
   * Unit names by unit (`tokens`, `requests`, a custom unit like `credits`), by plural
   * category. Default: `token`/`tokens`, `request`/`requests`; a custom unit as the plan spells it.
   * `cents` is never named: it is shown as money.
   */
  units: Record<string, PluralText>;
  /** Counter labels by counter key, e.g. `{ tokens: "Jetons" }`. Default: the server's `label`. */
  labels: Record<string, string>;
  /** What a counter without a quota shows. Default `"Unlimited"`. */
  unlimited: string;

  /** Badge text. `{remaining}`. Default `"{remaining} left"`. */
  badgeLabel: string;
  /** Badge held part. `{held}`. Default `"{held} held"`. */
  badgeHeld: string;
  /** Badge while the first answer is pending. Default `"Loading balance…"`. */
  badgeLoading: string;
  /** Badge when the balance cannot be loaded. Default `"Balance unavailable"`. */
  badgeError: string;
  /** Badge tooltip. `{label}`, `{used}`, `{total}`. Default `"{label}: {used} used of {total}"`. */
  badgeTitle: string;
  /** Tooltip part while something is held. `{held}`. Default `"{held} held"`. */
  badgeTitleHeld: string;
  /** Tooltip part for a renewing counter. `{date}`. Default `"renews {date}"`. */
  badgeTitleRenews: string;
  /** Said (and shown as the icon's tooltip) for the `low` state. Default `"Running low"`. */
  stateLow: string;
  /** Said (and shown as the icon's tooltip) for the `empty` state. Default `"Used up"`. */
  stateEmpty: string;

  /** Button text. Default `"Buy credits"`. */
  buy: string;
  /** Said to screen readers while checkout is being created. Default `"Opening checkout…"`. */
  buyPending: string;

  /** Dialog heading when a limit was hit. `{label}`. Default `"{label} limit reached"`. */
  dialogTitle: string;
  /** Dialog heading when opened while credit remains. `{units}`. Default `"Buy more {units}"`. */
  dialogTitleMore: string;
  /** `{required}`, `{remaining}`. Default `"This needs {required}; you have {remaining} left."`. */
  dialogNeeds: string;
  /** `{remaining}`. Default `"You have {remaining} left."`. */
  dialogLeft: string;
  /** `{units}`. Default `"You have used all your {units}."`. */
  dialogUsedUp: string;
  /** `{date}`. Default `"Your allowance renews on {date}."`. */
  dialogRenews: string;
  /** Default `"Buy more to keep going now."`. */
  dialogBuyNow: string;
  /** Default `"Buy more whenever you like."`. */
  dialogBuyAnytime: string;
  /** The close button. Default `"Not now"`. */
  dialogClose: string;

  /** The packs list's accessible name. Default `"Credit packs"`. */
  packsLabel: string;
  /** One pack's button. `{label}`, `{amount}`, `{price}`. Default `"{label} · {amount} · {price}"`. */
  pack: string;
  /** Default `"Loading packs…"`. */
  packsLoading: string;
  /** Default `"Packs could not be loaded."`. */
  packsError: string;
  /** Default `"No credit packs are available right now."`. */
  packsEmpty: string;
  /** Retry button of every load error. Default `"Try again"`. */
  retry: string;

  /** The meter's accessible name. `{label}`. Default `"{label} used"`. */
  meterLabel: string;
  /** Default `"{amount} used"`. */
  meterUsed: string;
  /** Default `"{amount} held"`. */
  meterHeld: string;
  /** `{amount}`, `{total}`. Default `"{amount} left of {total}"`. */
  meterLeft: string;
  /** `{amount}`. Default `"incl. {amount} bought"`. */
  meterGranted: string;
  /** `{date}`. Default `"Renews {date}"`. */
  meterRenews: string;
  /** Default `"Loading usage…"`. */
  meterLoading: string;
  /** Default `"Usage could not be loaded."`. */
  meterError: string;

  /** Chart caption. `{label}`, `{count}` days. */
  historyChartTitle: PluralText;
  /** The last bar's axis label. Default `"Today"`. */
  historyToday: string;
  /** Chart when nothing was used. Default `"No usage in this period."`. */
  historyNoUsage: string;
  /** Entries heading. Default `"Ledger entries"`. */
  historyEntries: string;
  /** Default `"No entries yet."`. */
  historyNoEntries: string;
  /** Default `"Show older entries"`. */
  historyMore: string;
  /** Default `"Loading history…"`. */
  historyLoading: string;
  /** Default `"The history could not be loaded."`. */
  historyError: string;
  /** Column headings. Default `"Time"`, `"Entry"`, `"Amount"`, `"Model"`. */
  historyTime: string;
  historyKind: string;
  historyAmount: string;
  historyModel: string;
  /**
   * Entry kinds as the table names them; `returned` is the unused part of a hold that a commit
   * gives back (shown as its own row). Default: `reserve` → `"held"`, `commit` → `"charged"`, …
   */
  kinds: Record<EntryKind | "returned", string>;

  /** Default `"Loading auto top-up…"`. */
  autoTopUpLoading: string;
  /** Default `"Auto top-up could not be loaded."` (with the `retry` button). */
  autoTopUpError: string;
  /** Default `"Auto top-up is off."`. */
  autoTopUpOff: string;
  /**
   * Auto top-up is on, by the plural category of the threshold. `{threshold}` (in the counter's
   * unit). Default `{ other: "Auto top-up is on: credits are bought when fewer than {threshold} remain." }`.
   */
  autoTopUpOn: PluralText;
  /** Added while a charge is under way. Default `"Topping up…"`. */
  autoTopUpInFlight: string;
  /** Default `"Auto top-up is paused."`, followed by the reason. */
  autoTopUpPaused: string;
  /**
   * Why auto top-up paused. Default: `card_declined` → `"Your card was declined."`,
   * `requires_action` → `"Your bank asked to confirm the payment (3-D Secure)."`,
   * `no_payment_method` → `"No card is saved."`, `pack_unavailable` → `"The chosen pack is no
   * longer on sale."`, `payment_failed` → `"The payment failed."`.
   */
  autoTopUpReasons: Record<AutoTopUpPauseReason, string>;
  /** The button that replaces the saved card. Default `"Update card"`. */
  autoTopUpFixCard: string;
  /** The button when no card is saved yet. Default `"Save a card"`. */
  autoTopUpSaveCard: string;
}

/** What `MeterProvider` takes: any subset; the rest stays English. */
export type MeterMessagesInput = Partial<MeterMessages>;

/** The category of `count` in `locale`, then the text for it (falling back to `other`). */
export function plural(text: PluralText, count: number, locale: string | undefined): string {
  return text[new Intl.PluralRules(locale).select(count)] ?? text.other;
}

/**
 * Fills a template. With `text` true, a plain string (for attributes and live regions);
 * otherwise nodes with every value in `<bdi>`, so an amount keeps its own direction inside
 * right-to-left text.
 */
export function fill(template: string, values: Record<string, ReactNode>, text: true): string;
export function fill(template: string, values: Record<string, ReactNode>, text?: false): ReactNode;
export function fill(template: string, values: Record<string, ReactNode>, text?: boolean): ReactNode {
  // Odd indexes are the names between braces; join treats a missing value as "".
  const parts = template.split(/\{(\w+)\}/).map((p, i) => (i % 2 ? (text ? values[p] : createElement("bdi", { key: i }, values[p])) : p));
  return text ? parts.join("") : parts;
}
