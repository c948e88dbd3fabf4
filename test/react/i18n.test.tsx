import { QueryClient } from "@tanstack/react-query";
import { render, screen, waitFor } from "@testing-library/react";
import { userEvent } from "@testing-library/user-event";
import type { ReactNode } from "react";
import { describe, expect, it } from "vitest";
import { AutoTopUpStatus, BalanceBadge, BuyCreditsButton, CreditPacks, LimitReachedDialog, MeterProvider, UsageHistory, UsageMeter, type EntryKind, type MeterMessages } from "../../src/react/index.js";
// The English defaults are not public API (each component carries its own): read them where they live.
import { AUTO_TOP_UP_MESSAGES } from "../../src/react/AutoTopUpStatus.js";
import { BADGE_MESSAGES } from "../../src/react/BalanceBadge.js";
import { BUY_MESSAGES } from "../../src/react/BuyCreditsButton.js";
import { PACKS_MESSAGES } from "../../src/react/CreditPacks.js";
import { DEFAULT_UNITS } from "../../src/react/format.js";
import { DIALOG_MESSAGES } from "../../src/react/LimitReachedDialog.js";
import { HISTORY_MESSAGES } from "../../src/react/UsageHistory.js";
import { METER_MESSAGES } from "../../src/react/UsageMeter.js";
import { ar, de } from "../../stories/messages.js";
import { autoTopUpCounter, counter, createFakeAutoTopUp, sampleEntries, sampleUsage, type FakeAutoTopUpOptions, type FakeMeterOptions } from "../../src/testing/index.js";
import type { AutoTopUpPauseReason } from "../../src/react/index.js";
import { renderWithMeter } from "./render.js";

const DEFAULTS = [BADGE_MESSAGES, BUY_MESSAGES, PACKS_MESSAGES, DIALOG_MESSAGES, METER_MESSAGES, HISTORY_MESSAGES, AUTO_TOP_UP_MESSAGES];

/** Every string in a message value (templates, plural forms, records). */
function strings(value: unknown): string[] {
  return typeof value == "string" ? [value] : value && typeof value == "object" ? Object.values(value).flatMap(strings) : [];
}

/**
 * The English words of the defaults: each template's text between its `{placeholders}`, where it
 * has a letter (" · " between amounts is not English). A translated page must show none of them.
 */
const ENGLISH = [...new Set([...DEFAULTS.flatMap(strings), ...strings(DEFAULT_UNITS)].flatMap((s) => s.split(/\{\w+\}/)).map((s) => s.trim().replace(/^[:;,.]\s*/, "")))]
  .filter((s) => /\p{L}{2}/u.test(s))
  .map((s) => ({ s, re: new RegExp(`(^|[^\\p{L}])${s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}($|[^\\p{L}])`, "u") }));

/** English found in the page: visible text and the attributes screen readers and tooltips use. */
function englishOnPage(): string[] {
  const texts = [document.body.textContent ?? ""];
  for (const el of document.body.querySelectorAll("*")) {
    for (const attr of ["aria-label", "title", "aria-valuetext", "aria-description", "placeholder", "alt"]) {
      const v = el.getAttribute(attr);
      if (v) texts.push(v);
    }
  }
  return ENGLISH.filter(({ re }) => texts.some((t) => re.test(t))).map(({ s }) => s);
}

const KINDS: EntryKind[] = ["reserve", "commit", "release", "expire", "track", "refund", "grant", "adjust", "clawback"];
/** Entries of every kind, commits that gave part of their hold back among them. */
const everyKind = sampleEntries(KINDS.length * 2).map((e, i) => ({ ...e, kind: KINDS[i % KINDS.length]! }));
const REASONS: AutoTopUpPauseReason[] = ["card_declined", "requires_action", "no_payment_method", "pack_unavailable", "payment_failed"];

type Language = { locale: string; messages: MeterMessages };
interface Case {
  name: string;
  /** Renders the component in the language; resolves once the state under test shows. */
  show: (lang: Language) => Promise<unknown>;
}

const settled = (selector: string, state: string) => waitFor(() => expect(document.querySelector(selector)).toHaveAttribute("data-state", state), { timeout: 5000 });

function meter(ui: ReactNode, lang: Language, options: FakeMeterOptions = {}) {
  return renderWithMeter(ui, { ...options, provider: { locale: lang.locale, messages: lang.messages } });
}

function autoTopUp(lang: Language, options: FakeAutoTopUpOptions, fail = false) {
  const fake = createFakeAutoTopUp(options);
  const fetchImpl: typeof fetch = async (input, init) => (fail ? new Response(JSON.stringify({ error: { code: "unavailable", message: "down" } }), { status: 503 }) : fake.fetch(input, init));
  render(
    <MeterProvider baseUrl="/api/meter" fetch={fetchImpl} queryClient={new QueryClient({ defaultOptions: { queries: { retry: false } } })} live={false} locale={lang.locale} messages={lang.messages}>
      <AutoTopUpStatus />
    </MeterProvider>,
  );
}

const badgeStates: [string, FakeMeterOptions][] = [
  ["ok", { usage: sampleUsage([counter({ used: 6_160, held: 1_500 })]) }],
  ["low", { usage: sampleUsage([counter({ used: 18_800 })]) }],
  ["empty", { usage: sampleUsage([counter({ used: 20_000 })]) }],
  ["unlimited", { usage: sampleUsage([counter({ quota: null, used: 9_000 })]) }],
  ["error", { usageError: { status: 503, code: "unavailable", message: "down" } }],
];

const CASES: Case[] = [
  { name: "BalanceBadge loading", show: async (l) => void meter(<BalanceBadge />, l, { pending: true }) },
  ...badgeStates.map(([state, options]) => ({ name: `BalanceBadge ${state}`, show: async (l: Language) => (meter(<BalanceBadge />, l, options), settled(".mk-badge", state)) })),
  { name: "UsageMeter loading", show: async (l) => void meter(<UsageMeter />, l, { pending: true }) },
  ...badgeStates.map(([state, options]) => ({ name: `UsageMeter ${state}`, show: async (l: Language) => (meter(<UsageMeter />, l, options), settled(".mk-meter", state)) })),
  { name: "CreditPacks ready", show: async (l) => (meter(<CreditPacks />, l), settled(".mk-packs", "ready")) },
  { name: "CreditPacks loading", show: async (l) => void meter(<CreditPacks />, l, { packsPending: true }) },
  { name: "CreditPacks empty", show: async (l) => (meter(<CreditPacks />, l, { packs: [] }), settled(".mk-packs", "empty")) },
  { name: "CreditPacks error", show: async (l) => (meter(<CreditPacks />, l, { packsError: { status: 503, code: "unavailable", message: "down" } }), settled(".mk-packs", "error")) },
  { name: "BuyCreditsButton idle", show: async (l) => void meter(<BuyCreditsButton packId="starter" />, l) },
  {
    name: "BuyCreditsButton pending",
    show: async (l) => {
      meter(<BuyCreditsButton packId="starter" navigate={() => {}} />, l, { checkoutDelay: Infinity });
      await userEvent.click(screen.getByRole("button"));
      await waitFor(() => expect(screen.getByRole("button")).toHaveAttribute("aria-busy", "true"));
    },
  },
  {
    name: "LimitReachedDialog after a 402",
    show: async (l) => {
      const { store } = meter(<LimitReachedDialog />, l, { usage: sampleUsage([counter({ used: 20_000 })]) });
      store.getState().open({ counter: "tokens", remaining: 0, required: 1_500 });
      await waitFor(() => expect(document.querySelector(".mk-dialog")).toHaveAttribute("data-state", "open"));
      await settled(".mk-packs", "ready");
    },
  },
  {
    name: "LimitReachedDialog opened to buy more, packs failing",
    show: async (l) => {
      meter(<LimitReachedDialog defaultOpen />, l, { packsError: { status: 503, code: "unavailable", message: "down" } });
      await settled(".mk-packs", "error");
    },
  },
  {
    name: "UsageHistory ready, every entry kind",
    show: async (l) => {
      meter(<UsageHistory />, l, { entries: everyKind });
      await waitFor(() => expect(document.querySelectorAll("tbody tr[data-kind]").length).toBeGreaterThan(KINDS.length));
    },
  },
  { name: "UsageHistory empty", show: async (l) => (meter(<UsageHistory />, l, { entries: [], history: [] }), settled(".mk-history", "ready")) },
  { name: "UsageHistory loading", show: async (l) => void meter(<UsageHistory />, l, { historyPending: true }) },
  { name: "UsageHistory error", show: async (l) => (meter(<UsageHistory />, l, { historyError: { status: 503, code: "unavailable", message: "down" } }), settled(".mk-history", "error")) },
  { name: "AutoTopUpStatus off", show: async (l) => (autoTopUp(l, {}), settled(".mk-auto-top-up", "off")) },
  { name: "AutoTopUpStatus topping up", show: async (l) => (autoTopUp(l, { counters: [autoTopUpCounter({ inFlight: true })] }), settled(".mk-auto-top-up", "active")) },
  { name: "AutoTopUpStatus without a card", show: async (l) => (autoTopUp(l, { paymentMethodSaved: false, counters: [autoTopUpCounter()] }), settled(".mk-auto-top-up", "active")) },
  ...REASONS.map((reason) => ({
    name: `AutoTopUpStatus paused: ${reason}`,
    show: async (l: Language) => (autoTopUp(l, { counters: [autoTopUpCounter({ status: "paused", pausedReason: reason, pausedMessage: "Stripe says no." })] }), settled(".mk-auto-top-up", "paused")),
  })),
  { name: "AutoTopUpStatus loading", show: async (l) => void autoTopUp(l, {}) },
  { name: "AutoTopUpStatus error", show: async (l) => (autoTopUp(l, {}, true), settled(".mk-auto-top-up", "error")) },
];

describe("i18n: a translated page shows no English", () => {
  it("the translations cover every message key the components have, and no other", () => {
    const keys = new Set(DEFAULTS.flatMap((d) => Object.keys(d)));
    expect([...keys].sort()).toEqual(Object.keys(de).sort());
    expect(Object.keys(ar).sort()).toEqual(Object.keys(de).sort());
  });

  it("the check finds English: the badge without messages", async () => {
    renderWithMeter(<BalanceBadge />, { usage: sampleUsage([counter({ used: 18_800, held: 100 })]) });
    await settled(".mk-badge", "low");
    await waitFor(() => expect(englishOnPage()).toEqual(expect.arrayContaining(["left", "held", "Running low", "used of", "renews", "tokens"])));
  });

  for (const [code, lang] of [
    ["de", { locale: "de-DE", messages: de }],
    ["ar", { locale: "ar-EG", messages: ar }],
  ] as const) {
    it.each(CASES.map((c) => [c.name, c] as const))(`${code}: %s`, async (_, c) => {
      await c.show(lang);
      expect(englishOnPage()).toEqual([]);
    });
  }
});
