import { useEffect, useId, useState } from "react";
import { AutoTopUpStatus, useAutoTopUp, useCounter, usePacks } from "../../src/react/index.js";
import { AUTO_TOP_UP_MAX_PER_MONTH, AUTO_TOP_UP_THRESHOLDS, DEFAULT_AUTO_TOP_UP_THRESHOLD } from "../constants.js";
import { num } from "./format.js";

/** Checkout (setup mode) opens in a new tab, like a pack's: this tab keeps its chat. */
function openInNewTab(url: string) {
  const tab = window.open(url, "_blank");
  if (!tab) window.location.assign(url);
}

interface Settings {
  enabled: boolean;
  threshold: number;
  packId: string;
}

function money(cents: number, currency: string): string {
  return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(cents / 100);
}

/**
 * The Usage page's auto top-up setting: save a card (Checkout in setup mode on the Stripe
 * stand-in, or Stripe test mode), turn auto top-up on or off, pick the threshold and the pack.
 * Every change is one `PUT /auto-top-up` through the kit's `useAutoTopUp` (with its own
 * Idempotency-Key); the kit's `AutoTopUpStatus` says what the server has (on, off, paused and why).
 */
export function AutoTopUpSetting() {
  const origin = window.location.origin;
  const { data, state, update, isUpdating, saveCard, isSavingCard, refetch } = useAutoTopUp({
    counter: "tokens",
    navigate: openInNewTab,
    successUrl: `${origin}/usage?card=saved`,
    cancelUrl: `${origin}/usage?card=cancelled`,
  });
  const { packs } = usePacks({ counter: "tokens" });
  const { counter } = useCounter("tokens");
  const [waitingForCard, setWaitingForCard] = useState(false);
  const [failed, setFailed] = useState<string | null>(null);
  const [landed] = useState(() => new URLSearchParams(window.location.search).get("card"));
  const ids = { title: useId(), threshold: useId(), pack: useId() };

  // This is the tab Checkout returned to: say so, and tidy the URL.
  useEffect(() => {
    if (landed) window.history.replaceState(null, "", window.location.pathname);
  }, [landed]);

  // The card is saved in the other tab and stored by the webhook: read the state until it shows.
  const cardSaved = data?.paymentMethodSaved === true;
  useEffect(() => {
    if (!waitingForCard || cardSaved) return;
    const timer = setInterval(() => void refetch(), 1000);
    return () => clearInterval(timer);
  }, [waitingForCard, cardSaved, refetch]);

  // A top-up moves `granted` (and ends "in flight"): read the state again when it does.
  const granted = counter?.granted;
  useEffect(() => {
    if (granted !== undefined) void refetch();
  }, [granted, refetch]);

  // The change being saved, shown at once; the server's state again once the PUT (and the
  // refetch it triggers) is done, or failed.
  const [draft, setDraft] = useState<Settings | null>(null);
  const saved: Settings = {
    enabled: state?.enabled ?? false,
    threshold: state?.threshold ?? DEFAULT_AUTO_TOP_UP_THRESHOLD,
    packId: state?.packId ?? packs[0]?.id ?? "",
  };
  const { enabled, threshold, packId } = draft ?? saved;
  const change = (next: Partial<Settings>) => {
    const settings = { enabled, threshold, packId, ...next };
    setFailed(null);
    setDraft(settings);
    update({ counter: "tokens", ...settings, maxPerPeriod: AUTO_TOP_UP_MAX_PER_MONTH })
      .catch((err: unknown) => setFailed(err instanceof Error ? err.message : "The change failed."))
      .finally(() => setDraft(null));
  };
  const currency = packs[0]?.price.currency ?? "usd";

  return (
    <section className="demo-card demo-auto-top-up" aria-labelledby={ids.title} data-testid="auto-top-up">
      <h2 className="demo-card-title" id={ids.title}>
        Auto top-up
      </h2>
      <p className="demo-card-sub">
        When fewer tokens than the threshold remain, the saved card is charged off-session for a pack and the tokens land on your balance, mid-chat: once
        per crossing, at most {money(AUTO_TOP_UP_MAX_PER_MONTH, currency)} a month.
      </p>
      {landed === "saved" && <p className="demo-auto-top-up-landed">Card saved. You can close this tab.</p>}
      {landed === "cancelled" && <p className="demo-auto-top-up-landed">Card not saved. You can close this tab.</p>}
      <div className="demo-auto-top-up-row">
        {cardSaved ? (
          <span className="demo-auto-top-up-card" data-testid="card-saved">
            ✓ Card saved
          </span>
        ) : (
          <button
            type="button"
            className="demo-button"
            disabled={!data || isSavingCard}
            onClick={() => {
              setWaitingForCard(true);
              saveCard().catch((err: unknown) => setFailed(err instanceof Error ? err.message : "Checkout could not open."));
            }}
          >
            {waitingForCard ? "Waiting for the card…" : "Save a card"}
          </button>
        )}
        <label className="demo-limit demo-auto-top-up-toggle">
          <input type="checkbox" checked={enabled} disabled={!data || !packId || isUpdating} onChange={(e) => change({ enabled: e.target.checked })} />
          Turn on auto top-up
        </label>
        <label htmlFor={ids.threshold} className="demo-limit">
          Below
          <select id={ids.threshold} value={threshold} disabled={!data || !packId || isUpdating} onChange={(e) => change({ threshold: Number(e.target.value) })}>
            {AUTO_TOP_UP_THRESHOLDS.map((n) => (
              <option key={n} value={n}>
                {num(n)} tokens
              </option>
            ))}
          </select>
        </label>
        <label htmlFor={ids.pack} className="demo-limit">
          buy
          <select id={ids.pack} value={packId} disabled={!data || !packId || isUpdating} onChange={(e) => change({ packId: e.target.value })}>
            {packs.map((p) => (
              <option key={p.id} value={p.id}>
                {p.label} · {num(p.amount)} tokens · {money(p.price.amount, p.price.currency)}
              </option>
            ))}
          </select>
        </label>
      </div>
      <AutoTopUpStatus counter="tokens" navigate={openInNewTab} successUrl={`${origin}/usage?card=saved`} cancelUrl={`${origin}/usage?card=cancelled`} className="demo-auto-top-up-status" />
      {failed && (
        <p role="alert" className="demo-notice">
          {failed}
        </p>
      )}
    </section>
  );
}
