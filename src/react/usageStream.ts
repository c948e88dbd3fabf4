import type { Usage } from "../core/types.js";

/** Longest wait between reconnects, in ms. */
const MAX_BACKOFF = 30_000;
/** A stream silent this long (no event, no heartbeat) counts as dead: proxies can leave half-open sockets. */
const STALE_AFTER = 90_000;
/** A tab hidden this long closes its stream; a quick tab switch keeps it. */
const HIDDEN_GRACE = 10_000;

/**
 * Follows `GET /usage/stream` while the tab is visible. It reads the stream with fetch rather
 * than `EventSource`, so the provider's `fetch` and `headers` (a bearer token, say) apply to it
 * too, tests and stories can fake it with a `ReadableStream`, and the heartbeats (SSE comments,
 * which `EventSource` hides) keep a stale-stream watchdog quiet. Reconnects with jittered
 * exponential backoff from the server's `retry:` hint. A tab hidden for `HIDDEN_GRACE` closes
 * the stream and a visible one reopens it. Returns a function that stops it all (and reports
 * it disconnected).
 */
export function openUsageStream(
  open: (signal: AbortSignal) => Promise<Response>,
  onUsage: (usage: Usage) => void,
  onConnected: (connected: boolean) => void,
): () => void {
  let retry = 1000;
  let failures = 0;
  // The connection being made, read or waited for (in backoff); undefined while closed. A
  // connection that finds itself replaced was closed on purpose and does not reconnect.
  let attempt: AbortController | undefined;
  // One timer serves as the stale-stream watchdog while connected and as the backoff between tries.
  let timer: ReturnType<typeof setTimeout> | undefined;
  let hiding: ReturnType<typeof setTimeout> | undefined;

  const connect = async () => {
    const current = (attempt = new AbortController());
    const alive = () => {
      clearTimeout(timer);
      timer = setTimeout(() => current.abort(), STALE_AFTER);
    };
    try {
      alive();
      const res = await open(current.signal);
      if (!res.ok) throw res.status;
      // A response without a body throws here, and is retried like any failure.
      // TextDecoder, not TextDecoderStream: Jest's jsdom environment (and Safari before 14.1)
      // has no TextDecoderStream, and the stream would fail and retry for ever there.
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (let chunk; !(chunk = await reader.read()).done; ) {
        alive();
        // A blank line ends an event. Within one, "field: value" lines; ":" lines are comments (the heartbeats).
        const events = (buffer += decoder.decode(chunk.value, { stream: true })).split(/\r?\n\r?\n/);
        buffer = events.pop()!;
        for (const event of events) {
          retry = +(/^retry: ?(\d+)/m.exec(event)?.[1] ?? retry);
          if (/^event: ?usage\r?$/m.test(event)) {
            // Strip the data lines' prefix and blank out every other line: what is left is the
            // data joined by newlines, as the SSE spec joins it (JSON ignores the extra whitespace).
            onUsage(JSON.parse(event.replace(/^(data: ?|.*)/gm, "")) as Usage);
            failures = 0;
            onConnected(true);
          }
        }
      }
    } catch {
      // Dropped, refused or stale: all get the same answer, a reconnect.
    }
    if (attempt != current) return;
    clearTimeout(timer);
    onConnected(false);
    timer = setTimeout(connect, Math.min(MAX_BACKOFF, retry * 2 ** failures++) * (0.5 + Math.random() / 2));
  };
  const close = () => {
    clearTimeout(timer);
    attempt?.abort();
    attempt = undefined;
    onConnected(false);
  };
  const sync = () => {
    clearTimeout(hiding);
    if (document.hidden) hiding = setTimeout(close, HIDDEN_GRACE);
    else if (!attempt) void connect();
  };
  document.addEventListener("visibilitychange", sync);
  sync();

  return () => {
    document.removeEventListener("visibilitychange", sync);
    clearTimeout(hiding);
    close();
  };
}
