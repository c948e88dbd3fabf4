"use client";
// The app's own client component: asks the chat route through the kit's metered fetch, so a
// 402 opens LimitReachedDialog and the balance refreshes.
import { useMeteredFetch } from "meterkit/react";
import { useState } from "react";

export function Chat() {
  const meteredFetch = useMeteredFetch();
  const [reply, setReply] = useState("");
  const [status, setStatus] = useState("idle");

  async function ask(maxOutputTokens: number) {
    setStatus("asking");
    const res = await meteredFetch("/api/chat", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "What does meterkit do?", maxOutputTokens }),
    });
    const body = (await res.json()) as { text?: string };
    setReply(body.text ?? "");
    setStatus(res.ok ? "answered" : `failed ${res.status}`);
  }

  return (
    <section aria-label="Chat">
      <button type="button" onClick={() => void ask(100)}>
        Ask
      </button>{" "}
      <button type="button" onClick={() => void ask(100_000)}>
        Ask for a very long answer
      </button>
      <p data-testid="status">{status}</p>
      <p data-testid="reply">{reply}</p>
    </section>
  );
}
