import type { Usage } from "../core/types.js";

/** Longest wait between reconnects, in ms. */
const MAX_BACKOFF = 30_000;
/** A stream silent this long (no event, no heartbeat) counts as dead: proxies can leave half-open sockets. */
const STALE_AFTER = 90_000;

/**
 * Follows `GET /usage/stream`. It reads the stream with fetch rather than `EventSource`, so the
 * provider's `fetch` and `headers` (a bearer token, say) apply to it too, and tests and stories
 * can fake it with a `ReadableStream`. Reconnects with jittered exponential backoff from the
 * server's `retry:` hint. Returns a function that stops it.
 */
export function openUsageStream(
  open: (signal: AbortSignal) => Promise<Response>,
  onUsage: (usage: Usage) => void,
  onConnected: (connected: boolean) => void,
): () => void {
  let stopped = false;
  let retry = 1000;
  let failures = 0;
  let attempt: AbortController;
  // One timer serves as the stale-stream watchdog while connected and as the backoff between tries.
  let timer: ReturnType<typeof setTimeout> | undefined;

  const connect = async () => {
    const current = (attempt = new AbortController());
    const alive = () => {
      clearTimeout(timer);
      timer = setTimeout(() => current.abort(), STALE_AFTER);
    };
    try {
      alive();
      const res = await open(current.signal);
      const reader = res.ok && res.body?.getReader();
      if (!reader) throw res.status;
      const decoder = new TextDecoder();
      let buffer = "";
      for (let chunk; !(chunk = await reader.read()).done; ) {
        alive();
        // A blank line ends an event. Within one, "field: value" lines; ":" lines are comments (the heartbeats).
        const events = (buffer += decoder.decode(chunk.value, { stream: true })).split(/\r?\n\r?\n/);
        buffer = events.pop()!;
        for (const event of events) {
          retry = Number(/^retry: ?(\d+)/m.exec(event)?.[1] ?? retry);
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
    clearTimeout(timer);
    if (stopped) return;
    onConnected(false);
    timer = setTimeout(connect, Math.min(MAX_BACKOFF, retry * 2 ** failures++) * (0.5 + Math.random() / 2));
  };
  void connect();

  return () => {
    stopped = true;
    clearTimeout(timer);
    attempt.abort();
  };
}
