import { useEffect, useId, useRef, useState, type FormEvent, type KeyboardEvent } from "react";
import { DEFAULT_REPLY_LIMIT, REPLY_LIMITS, SUGGESTED_PROMPTS } from "../constants.js";
import { num } from "./format.js";
import type { ChatMessage, UseChatResult } from "./useChat.js";

export interface ChatPageProps {
  chat: UseChatResult;
  model: string;
}

/** The wire formats the simulated model can speak; the server meters each with its wrapper. */
const MODEL_SHAPES: ReadonlyArray<readonly [string, string]> = [
  ["chat", "OpenAI Chat Completions"],
  ["responses", "OpenAI Responses"],
  ["anthropic", "Anthropic Messages"],
];

/** The chat: the conversation, what each reply held and cost, and the composer with Stop. */
export function ChatPage({ chat, model }: ChatPageProps) {
  const [draft, setDraft] = useState("");
  const [maxTokens, setMaxTokens] = useState<number>(DEFAULT_REPLY_LIMIT);
  const [shape, setShape] = useState<string>("chat");
  const shapeId = useId();
  const input = useRef<HTMLTextAreaElement>(null);
  const end = useRef<HTMLDivElement>(null);
  const limitId = useId();
  const noticeId = useId();

  // Follow the reply as it streams.
  const last = chat.messages.at(-1);
  useEffect(() => {
    end.current?.scrollIntoView({ block: "end" });
  }, [chat.messages.length, last?.content.length, last?.status]);

  const submit = async (text: string) => {
    const prompt = text.trim();
    if (!prompt || chat.busy) return;
    setDraft("");
    const result = await chat.send(prompt, maxTokens, shape);
    // Not enough tokens: keep the prompt, so it can be sent again after buying.
    if (result === "refused") setDraft(prompt);
    input.current?.focus();
  };

  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    void submit(draft);
  };
  const onKeyDown = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      void submit(draft);
    }
  };

  return (
    <section className="demo-chat" aria-label="Chat">
      {chat.messages.length === 0 ? (
        <div className="demo-empty">
          <h1>Chat with a metered model</h1>
          <p>
            Each prompt <strong>holds</strong> its tokens plus the reply limit, counted with the real tokenizer. The reply is charged exactly and the
            rest of the hold goes back at once. Stop a reply and you pay only for the words produced. Watch the badge.
          </p>
          <ul className="demo-suggestions" aria-label="Try a prompt">
            {SUGGESTED_PROMPTS.map((p) => (
              <li key={p}>
                <button type="button" className="demo-chip" onClick={() => void submit(p)} disabled={chat.busy}>
                  {p}
                </button>
              </li>
            ))}
          </ul>
        </div>
      ) : (
        <ol className="demo-messages" role="log" aria-label="Conversation" aria-live="polite">
          {chat.messages.map((m) => (
            <li key={m.id} className={`demo-message demo-message-${m.role}`} data-status={m.status} aria-busy={m.status === "streaming" || m.status === "waiting" || undefined}>
              {m.role === "assistant" && <span className="demo-message-author">{model} · simulated</span>}
              <div className="demo-message-text" data-testid={m.role === "assistant" ? "reply" : undefined}>
                {m.content}
                {(m.status === "waiting" || m.status === "streaming") && <span className="demo-caret" aria-hidden="true" />}
              </div>
              {m.role === "assistant" && <ReplyCostLine message={m} />}
            </li>
          ))}
        </ol>
      )}
      <div ref={end} className="demo-end" />

      <form className="demo-composer" onSubmit={onSubmit} aria-label="Send a prompt">
        {chat.notice && (
          <p id={noticeId} className="demo-notice" role="alert">
            {chat.notice}
          </p>
        )}
        <textarea
          ref={input}
          className="demo-input"
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
          onKeyDown={onKeyDown}
          rows={2}
          placeholder="Ask the simulated model anything…"
          aria-label="Prompt"
          aria-describedby={chat.notice ? noticeId : undefined}
        />
        <div className="demo-composer-row">
          <label htmlFor={limitId} className="demo-limit">
            Reply limit
            <select id={limitId} value={maxTokens} onChange={(e) => setMaxTokens(Number(e.target.value))}>
              {REPLY_LIMITS.map((n) => (
                <option key={n} value={n}>
                  {num(n)} tokens
                </option>
              ))}
            </select>
          </label>
          <label htmlFor={shapeId} className="demo-limit">
            Model API
            <select id={shapeId} value={shape} onChange={(e) => setShape(e.target.value)}>
              {MODEL_SHAPES.map(([value, label]) => (
                <option key={value} value={value}>
                  {label}
                </option>
              ))}
            </select>
          </label>
          <span className="demo-hint">Enter to send · Shift+Enter for a new line</span>
          {chat.busy ? (
            <button type="button" className="demo-button demo-button-stop" onClick={chat.stop}>
              <span className="demo-stop-icon" aria-hidden="true" />
              Stop
            </button>
          ) : (
            <button type="submit" className="demo-button demo-button-primary" disabled={!draft.trim()}>
              Send
            </button>
          )}
        </div>
      </form>
    </section>
  );
}

/** Under each reply: what it holds while streaming, what it cost once settled. */
function ReplyCostLine({ message: m }: { message: ChatMessage }) {
  const c = m.cost;
  let text: string;
  if (m.status === "waiting" || !c) {
    text = m.status === "error" ? "The reply failed." : m.status === "stopped" ? "Stopped before the reply started (the Usage view shows any charge for the prompt)." : "Reserving…";
  } else if (m.status === "streaming") {
    text = `Holding ${num(c.held)} tokens: prompt ${num(c.promptTokens)} + reply limit ${num(c.maxTokens)}`;
  } else if (c.charged === undefined) {
    text = m.status === "stopped" ? "Stopped. Settling…" : "Settling…";
  } else {
    const reply = c.replyTokens ?? c.charged - c.promptTokens;
    const what = m.status === "stopped" ? `Stopped · charged ${num(c.charged)} tokens (prompt ${num(c.promptTokens)} + ${num(reply)} produced)` : `Charged ${num(c.charged)} tokens (prompt ${num(c.promptTokens)} + reply ${num(reply)})`;
    text = `${what} · ${num(c.refunded ?? 0)} of ${num(c.held)} held refunded${m.finishReason === "length" ? " · cut at the reply limit" : ""}`;
  }
  return (
    <p className="demo-cost" data-testid="reply-cost" data-charged={c?.charged} data-held={c?.held}>
      {text}
    </p>
  );
}
