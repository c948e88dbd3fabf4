import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { BalanceBadge, LimitReachedDialog, meterKeys, UsageMeter, useCounter, useLimitReached } from "../../src/react/index.js";
import { ChatPage } from "./ChatPage.js";
import { num } from "./format.js";
import { ResetButton } from "./ResetButton.js";
import { UsagePage } from "./UsagePage.js";
import { useAutoTopUpCredited } from "./useAutoTopUpCredited.js";
import { useChat } from "./useChat.js";
import { hrefOf, useRoute, type Route } from "./useRoute.js";

interface DemoInfo {
  userId: string;
  model: string;
  payments: "stand-in" | "stripe";
}

/** Checkout opens in a new tab, so this tab stays put and its badge shows the credits arrive live. */
function openCheckout(url: string) {
  const tab = window.open(url, "_blank");
  if (!tab) window.location.assign(url);
}

export function App() {
  const [route, go] = useRoute();
  const chat = useChat();
  const queryClient = useQueryClient();
  const { counter } = useCounter("tokens");
  const limitOpen = useLimitReached((s) => s.isOpen);
  const closeLimit = useLimitReached((s) => s.close);
  const { data: info } = useQuery({ queryKey: ["demo", "info"], queryFn: () => getJson<DemoInfo>("/api/demo"), staleTime: Infinity });

  // The limit dialog: opened by a 402 from the chat (the kit's store) or by "Buy tokens".
  const [dialogOpen, setDialogOpen] = useState(false);
  const [buying, setBuying] = useState(false);
  const [toast, setToast] = useState<string | null>(null);
  const [banner, setBanner] = useState<string | null>(null);

  // Back from checkout (in the tab checkout opened): say what happened, then tidy the URL.
  useEffect(() => {
    const outcome = new URLSearchParams(window.location.search).get("checkout");
    if (outcome === "success") setBanner("Payment received: the tokens are on your balance. You can close this tab.");
    if (outcome === "cancelled") setBanner("Checkout cancelled: nothing was charged. You can close this tab.");
    if (outcome) window.history.replaceState(null, "", window.location.pathname);
  }, []);

  // Credits arriving (a pack paid in the other tab, or an auto top-up mid-chat): close the dialog and say so.
  const wasAutoTopUp = useAutoTopUpCredited();
  const granted = counter?.granted;
  const lastGranted = useRef<number | undefined>(undefined);
  useEffect(() => {
    if (granted === undefined) return;
    const before = lastGranted.current;
    lastGranted.current = granted;
    if (before !== undefined && granted > before) {
      const added = num(granted - before);
      const bought = `+${added} tokens added to your balance.`;
      void wasAutoTopUp().then(
        (auto) => setToast(auto ? `Auto top-up: +${added} tokens, charged to your saved card.` : bought),
        () => setToast(bought),
      );
      setDialogOpen(false);
      closeLimit();
      if (chat.notice) chat.setNotice("Tokens added: send your prompt again.");
    }
    // Only a change of `granted` counts; the notice is read as it is at that moment.
  }, [granted, closeLimit]);

  useEffect(() => {
    if (!toast) return;
    const t = setTimeout(() => setToast(null), 6000);
    return () => clearTimeout(t);
  }, [toast]);

  const reset = async () => {
    chat.clear();
    const res = await fetch("/api/reset", { method: "POST" });
    if (!res.ok) throw new Error("The reset failed.");
    // `lastGranted` is left alone: the live stream may already have announced the erased balance
    // (granted fell, no note), and the next rise from there is a top-up to announce.
    await queryClient.invalidateQueries({ queryKey: meterKeys.all });
    setToast("The demo is back to the start.");
  };

  const nav = (to: Route, label: string) => (
    <a
      href={hrefOf(to)}
      className="demo-tab"
      aria-current={route === to ? "page" : undefined}
      onClick={(e) => {
        if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
        e.preventDefault();
        go(to);
      }}
    >
      {label}
    </a>
  );

  return (
    <div className="demo">
      <header className="demo-header">
        <div className="demo-bar">
          <a className="demo-brand" href="/" aria-label="meterkit demo, home">
            <svg viewBox="0 0 32 32" aria-hidden="true" className="demo-logo">
              <rect width="32" height="32" rx="8" />
              <path d="M8 22V12h3v10zm6 0V8h3v14zm6 0v-6h3v6z" />
            </svg>
            <span>
              meterkit <span className="demo-brand-sub">demo</span>
            </span>
          </a>
          <nav className="demo-tabs" aria-label="Views">
            {nav("chat", "Chat")}
            {nav("usage", "Usage")}
          </nav>
          <div className="demo-account">
            <BalanceBadge counter="tokens" className="demo-badge" data-testid="balance" />
            <button
              type="button"
              className="demo-button demo-button-primary"
              onClick={() => {
                setBuying(true);
                setDialogOpen(true);
              }}
            >
              Buy tokens
            </button>
            <ResetButton onReset={reset} disabled={chat.busy} />
          </div>
        </div>
        <UsageMeter counter="tokens" className="demo-meter" />
      </header>

      {banner && (
        <p className="demo-banner" role="status">
          {banner}
          <button type="button" className="demo-link" onClick={() => setBanner(null)}>
            Dismiss
          </button>
        </p>
      )}

      <main className="demo-main">{route === "chat" ? <ChatPage chat={chat} model={info?.model ?? "gpt-4o-mini"} /> : <UsagePage />}</main>

      <footer className="demo-footer">
        Signed in as <code>{info?.userId ?? "demo-user"}</code> · the model is simulated, the metering is real ·{" "}
        {info?.payments === "stripe" ? "payments: Stripe test mode" : "payments: local Stripe stand-in, no card charged"}
      </footer>

      <LimitReachedDialog
        counter="tokens"
        open={dialogOpen}
        onOpenChange={(open) => {
          setDialogOpen(open);
          if (!open) setBuying(false);
        }}
        navigate={openCheckout}
        title={buying && !limitOpen ? "Buy tokens" : undefined}
        description={
          buying && !limitOpen
            ? ({ counter: c }) =>
                `You have ${num(c?.remaining ?? 0)} tokens left. A pack adds tokens on top of your monthly allowance, and they do not expire.`
            : undefined
        }
      >
        <p className="demo-dialog-note">
          {info?.payments === "stripe"
            ? "Checkout opens in a new tab in Stripe test mode (card 4242 4242 4242 4242). Your balance here updates as soon as Stripe confirms the payment."
            : "Checkout opens in a new tab on meterkit's local Stripe stand-in: no card, nothing charged. Your balance here updates as soon as you pay."}
        </p>
      </LimitReachedDialog>

      <div className="demo-toast-region" aria-live="polite">
        {toast && (
          <p className="demo-toast" role="status">
            {toast}
          </p>
        )}
      </div>
    </div>
  );
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { cache: "no-store" });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return (await res.json()) as T;
}
