import type { Usage } from "../../core/types.js";

const encoder = new TextEncoder();

/** Bytes a stream may hold for a client that does not read before it keeps only the latest Usage. */
export const STREAM_BUFFER_BYTES = 16_384;

/** One open `GET /usage/stream`: the hub pushes Usage into it; it never buffers more than one pending event. */
export interface UsageSink {
  readonly userId: string;
  readonly stream: ReadableStream<Uint8Array>;
  /** Sends `usage` unless this stream already has that version (or a newer one); `force` sends anyway. */
  send(usage: Usage, force?: boolean): void;
  /** A comment line that keeps proxies from closing an idle connection. Returns false when the client has stopped reading for too long. */
  heartbeat(): boolean;
  /**
   * Ends the stream: gracefully (server shutdown), or with `abort` (a stalled client): the
   * stream errors, which makes the adapter destroy the connection (src/server/http/node.ts).
   */
  close(abort?: boolean): void;
}

export interface UsageSinkOptions {
  userId: string;
  /** The `retry:` hint, in ms. */
  retry: number;
  /** Heartbeats in a row the client may leave the buffer full before it is dropped. */
  maxStalledBeats: number;
  /**
   * Called once when the stream ends, whoever ends it. `dropped` is true when the server
   * aborted it (a stalled client, a client gone): its connection may still be open until
   * the adapter destroys it, so the caller keeps counting it until the request's signal says so.
   */
  onClose(dropped: boolean): void;
}

/**
 * A Server-Sent Events body. Backpressure: events are enqueued only while the stream's queue
 * (bounded by {@link STREAM_BUFFER_BYTES}) has room; otherwise the newest Usage waits in a
 * single slot, replacing any older one — every Usage is a full snapshot, so a slow client
 * skips to the latest instead of making the server buffer without bound.
 */
export function createUsageSink(o: UsageSinkOptions): UsageSink {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let pending: Uint8Array | null = null;
  let lastVersion = -1;
  let stalled = 0;
  let closed = false;

  const finish = (dropped: boolean) => {
    if (closed) return;
    closed = true;
    pending = null;
    o.onClose(dropped);
  };
  const stream = new ReadableStream<Uint8Array>(
    {
      start(c) {
        controller = c;
        c.enqueue(encoder.encode(`retry: ${o.retry}\n\n`));
      },
      pull(c) {
        stalled = 0;
        if (pending) {
          c.enqueue(pending);
          pending = null;
        }
      },
      // The reader let go: the client is gone.
      cancel: () => finish(false),
    },
    new ByteLengthQueuingStrategy({ highWaterMark: STREAM_BUFFER_BYTES }),
  );
  const room = () => (controller.desiredSize ?? 0) > 0;

  return {
    userId: o.userId,
    stream,
    send(usage, force = false) {
      if (closed || (!force && usage.version <= lastVersion)) return;
      lastVersion = Math.max(lastVersion, usage.version);
      const frame = encoder.encode(`event: usage\nid: ${usage.version}\ndata: ${JSON.stringify(usage)}\n\n`);
      if (room()) controller.enqueue(frame);
      else pending = frame;
    },
    heartbeat() {
      if (closed) return false;
      if (room()) {
        stalled = 0;
        controller.enqueue(encoder.encode(": heartbeat\n\n"));
        return true;
      }
      return ++stalled < o.maxStalledBeats;
    },
    close(abort = false) {
      if (closed) return;
      try {
        if (abort) controller.error(new Error("meterkit: the client stopped reading the usage stream"));
        else controller.close();
      } catch {
        // already errored or cancelled
      }
      finish(abort);
    },
  };
}
