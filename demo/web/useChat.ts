import { useCallback, useRef, useState } from "react";
import { errorFromBody, LimitReachedError } from "../../src/core/index.js";
import { useMeteredFetch } from "../../src/react/index.js";
import type { ChatEvent } from "../chatRoute.js";
import type { HoldOutcome } from "../usageHistory.js";

/** What one reply cost, as far as the page knows it. */
export interface ReplyCost {
  reservationId: string;
  /** The hold: prompt + reply limit. */
  held: number;
  promptTokens: number;
  maxTokens: number;
  /** Known once the reply is settled. */
  charged?: number;
  refunded?: number;
  replyTokens?: number;
}

export interface ChatMessage {
  id: number;
  role: "user" | "assistant";
  content: string;
  /** Assistant messages: where the reply is. */
  status?: "waiting" | "streaming" | "done" | "stopped" | "error";
  finishReason?: "stop" | "length";
  cost?: ReplyCost;
}

export interface UseChatResult {
  messages: ChatMessage[];
  /** True from Send until the reply ends. */
  busy: boolean;
  /** Why the last prompt was not sent (not enough tokens, an error), for the composer. */
  notice: string | null;
  /** `shape`: the wire format the simulated model speaks (`"chat"`, `"responses"`, `"anthropic"`). Default `"chat"`. */
  send: (prompt: string, maxTokens: number, shape?: string) => Promise<"sent" | "refused">;
  stop: () => void;
  clear: () => void;
  /** Sets or clears the notice above the composer. */
  setNotice: (notice: string | null) => void;
}

let nextId = 1;

/**
 * The chat's state and its one request: `POST /api/chat` through the kit's metered fetch (a 402
 * opens the limit dialog by itself), read line by line as the reply streams. Stop aborts the
 * request; the server then charges the prompt and the words produced, which the page reads back
 * from the ledger.
 */
export function useChat(): UseChatResult {
  const meteredFetch = useMeteredFetch();
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const controller = useRef<AbortController | null>(null);
  const history = useRef<ChatMessage[]>([]);
  history.current = messages;

  const update = useCallback((id: number, change: (m: ChatMessage) => Partial<ChatMessage>) => {
    setMessages((all) => all.map((m) => (m.id === id ? { ...m, ...change(m) } : m)));
  }, []);

  const send = useCallback(
    async (prompt: string, maxTokens: number, shape = "chat"): Promise<"sent" | "refused"> => {
      // The conversation so far: every turn the user saw, stopped replies as far as they got.
      const turns = history.current
        .filter((m) => m.content && (m.role === "user" || m.status === "done" || m.status === "stopped"))
        .map((m) => ({ role: m.role, content: m.content }));
      const user: ChatMessage = { id: nextId++, role: "user", content: prompt };
      const reply: ChatMessage = { id: nextId++, role: "assistant", content: "", status: "waiting" };
      const abort = new AbortController();
      controller.current = abort;
      setNotice(null);
      setBusy(true);
      setMessages((all) => [...all, user, reply]);
      let cost: ReplyCost | undefined;
      try {
        const res = await meteredFetch("/api/chat", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ messages: [...turns, { role: "user", content: prompt }], maxTokens, shape }),
          signal: abort.signal,
        });
        if (!res.ok || !res.body) {
          const error = errorFromBody(await res.json().catch(() => null), res.status);
          // Not sent: take the turn back out; the limit dialog is already open for a 402.
          setMessages((all) => all.filter((m) => m.id !== user.id && m.id !== reply.id));
          setNotice(
            error instanceof LimitReachedError
              ? `Not enough tokens: this prompt holds ${error.required.toLocaleString()} (prompt + reply limit) and you have ${error.remaining.toLocaleString()} left.`
              : error.message,
          );
          return "refused";
        }
        for await (const event of readEvents(res.body)) {
          if (event.type === "start") {
            cost = { reservationId: event.reservationId, held: event.held, promptTokens: event.promptTokens, maxTokens: event.maxTokens };
            update(reply.id, () => ({ status: "streaming", cost }));
          } else if (event.type === "delta") {
            update(reply.id, (m) => ({ content: m.content + event.text }));
          } else if (event.type === "done") {
            const settled = { ...cost!, charged: event.charged, refunded: event.refunded, replyTokens: event.replyTokens, promptTokens: event.promptTokens };
            update(reply.id, () => ({ status: "done", finishReason: event.finishReason, cost: settled }));
          } else {
            update(reply.id, () => ({ status: "error" }));
            setNotice(event.message);
          }
        }
        return "sent";
      } catch (err) {
        if (!abort.signal.aborted) {
          update(reply.id, () => ({ status: "error" }));
          setNotice(err instanceof Error ? err.message : String(err));
          return "sent";
        }
        // Stopped. The server settles as it notices the closed connection: ask the ledger.
        update(reply.id, () => ({ status: "stopped" }));
        if (cost) {
          const outcome = await settledHold(cost.reservationId);
          if (outcome) {
            const settled = { ...cost, charged: outcome.charged, refunded: outcome.refunded, replyTokens: outcome.charged - cost.promptTokens };
            update(reply.id, () => ({ cost: settled }));
          }
        }
        return "sent";
      } finally {
        if (controller.current === abort) controller.current = null;
        setBusy(false);
      }
    },
    [meteredFetch, update],
  );

  const stop = useCallback(() => controller.current?.abort(), []);
  const clear = useCallback(() => {
    controller.current?.abort();
    setMessages([]);
    setNotice(null);
  }, []);

  return { messages, busy, notice, send, stop, clear, setNotice };
}

/** The events of an `application/x-ndjson` body, one per line. */
async function* readEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<ChatEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (line) yield JSON.parse(line) as ChatEvent;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/** Polls the hold until the server has settled it (a few ms after the stop, usually). */
async function settledHold(reservationId: string): Promise<HoldOutcome | null> {
  for (let i = 0; i < 40; i++) {
    const res = await fetch(`/api/holds/${encodeURIComponent(reservationId)}`, { cache: "no-store" }).catch(() => null);
    if (res?.ok) {
      const outcome = (await res.json()) as HoldOutcome;
      if (outcome.status !== "open") return outcome;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return null;
}
