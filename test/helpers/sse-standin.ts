import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** How a stand-in answers one request; the wire format is the stand-in's own. */
export interface SseScenario {
  /** The reply, streamed one word (with its leading space) per delta. Default "Hello from the stand-in model.". */
  text?: string;
  /** Answer with this HTTP status and the provider's error body instead of a reply. */
  failStatus?: number;
  /** Streaming: destroy the connection after this many text deltas (a mid-stream disconnect). */
  failAfterChunks?: number;
  /** Streaming: stop sending (keep the connection open) after this many text deltas. */
  stallAfterChunks?: number;
  /** Streaming: end the response cleanly after this many text deltas, without the closing events. */
  endAfterChunks?: number;
  /** Streaming: send the provider's `error` event after this many text deltas, then end. */
  errorEventAfterChunks?: number;
  /** Milliseconds between streamed events. Default 0. */
  chunkDelayMs?: number;
}

/** One request a stand-in received. */
export interface SseRequest {
  body: Record<string, unknown>;
  /** True when the client closed the connection before the answer was complete. */
  closedEarly: boolean;
  /** Text deltas written before the answer ended or the client left. */
  chunksSent: number;
}

/** What a stand-in's responder writes with. */
export interface SseWriter {
  /** Writes one SSE event with its `event:` line; false once the connection is gone. */
  event(name: string, data: unknown): Promise<boolean>;
  /** Writes one text delta event, honouring the scenario's failure points; false when the stream must stop here. */
  delta(name: string, data: unknown): Promise<boolean>;
  json(status: number, body: unknown): void;
  /** Ends the answer normally. */
  end(): void;
}

export interface SseStandin<S extends SseScenario> {
  /** The server's origin, `http://127.0.0.1:<port>`. */
  origin: string;
  requests: SseRequest[];
  /** Queues scenarios for the next requests, one each; afterwards the default applies. */
  script(...scenarios: S[]): void;
  close(): Promise<void>;
}

/**
 * A local HTTP server that answers POSTs to `path` with `respond`, which speaks a provider's
 * wire format (JSON or Server-Sent Events with `event:` lines) and can fail at scripted points.
 */
export async function startSseStandin<S extends SseScenario>(
  path: string,
  respond: (body: Record<string, unknown>, scenario: S, out: SseWriter, record: SseRequest) => Promise<void>,
): Promise<SseStandin<S>> {
  const queue: S[] = [];
  const requests: SseRequest[] = [];
  const open = new Set<ServerResponse>();

  const server = createServer((req, res) => {
    void handle(req, res).catch(() => res.destroy());
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== "POST" || req.url?.split("?")[0] !== path) {
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: "not found" } }));
      return;
    }
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
    const record: SseRequest = { body, closedEarly: false, chunksSent: 0 };
    requests.push(record);
    const scenario = queue.shift() ?? ({} as S);
    let finished = false;
    let streaming = false;
    res.on("close", () => {
      open.delete(res);
      if (!finished) record.closedEarly = true;
    });
    open.add(res);
    const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

    const out: SseWriter = {
      async event(name, data) {
        if (res.destroyed) return false;
        if (!streaming) {
          streaming = true;
          res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
        }
        if (scenario.chunkDelayMs) await pause(scenario.chunkDelayMs);
        if (res.destroyed) return false;
        res.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
        return true;
      },
      async delta(name, data) {
        const n = record.chunksSent;
        if (scenario.failAfterChunks !== undefined && n >= scenario.failAfterChunks) {
          // Let what was written reach the client, then cut the connection mid-answer.
          await pause(30);
          res.destroy();
          return false;
        }
        if (scenario.stallAfterChunks !== undefined && n >= scenario.stallAfterChunks) return false; // left open until the client leaves
        if (scenario.endAfterChunks !== undefined && n >= scenario.endAfterChunks) {
          finished = true;
          res.end();
          return false;
        }
        if (!(await out.event(name, data))) return false;
        record.chunksSent++;
        return true;
      },
      json(status, payload) {
        finished = true;
        res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(payload));
      },
      end() {
        finished = true;
        res.end();
      },
    };
    await respond(body, scenario, out, record);
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    script: (...scenarios) => void queue.push(...scenarios),
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of open) res.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The reply split into deltas: one word with its leading space each. */
export function words(text: string): string[] {
  return text.match(/\s*\S+/g) ?? [];
}
