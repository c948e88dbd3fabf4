import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Usage } from "../../src/core/types.js";
import { toNodeHandler, type MeterHandler } from "../../src/server/index.js";

export const SECRET = "sk_test_0123456789abcdefghijklmnop";
export const OLD_SECRET = "sk_test_old_0123456789abcdefghijkl";
export const TOKEN_SECRET = "bt_secret_0123456789abcdefghijklmnopqrstuv";

/** A real HTTP server around a Web handler, on a free port. */
export async function listen(
  handler: MeterHandler<unknown> | ((req: Request) => Promise<Response>),
): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const server = createServer(toNodeHandler(handler as MeterHandler<unknown>));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Reads Server-Sent Events with a real HTTP client (fetch): `next()` resolves with the next
 * `usage` event, `raw` keeps every line received (heartbeats, `retry:`).
 */
export async function openSse(url: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const res = await fetch(url, { headers, signal: controller.signal });
  const events: Usage[] = [];
  const waiters: Array<() => void> = [];
  const raw: string[] = [];
  let ended = false;
  const pump = (async () => {
    if (!res.ok || !res.body) return;
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let at: number;
        while ((at = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, at);
          buffer = buffer.slice(at + 2);
          raw.push(block);
          const lines = block.split("\n");
          if (lines.includes("event: usage")) {
            const data = lines.find((l) => l.startsWith("data: "))!.slice(6);
            events.push(JSON.parse(data) as Usage);
            waiters.splice(0).forEach((w) => w());
          }
        }
      }
    } catch {
      // aborted
    } finally {
      ended = true;
      waiters.splice(0).forEach((w) => w());
    }
  })();
  let read = 0;
  return {
    res,
    events,
    raw,
    get ended() {
      return ended;
    },
    /** The next usage event not yet returned by next(). */
    async next(timeout = 5_000): Promise<Usage> {
      const deadline = Date.now() + timeout;
      while (events.length <= read) {
        if (ended) throw new Error("stream ended");
        const left = deadline - Date.now();
        if (left <= 0) throw new Error("no usage event within " + timeout + " ms");
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          waiters.push(() => (clearTimeout(t), resolve()));
        });
      }
      return events[read++]!;
    },
    /** Waits for the stream to end (server closed it). */
    async closedByServer(timeout = 5_000): Promise<void> {
      const t = Date.now() + timeout;
      while (!ended && Date.now() < t) await new Promise((r) => setTimeout(r, 20));
      if (!ended) throw new Error("stream still open");
    },
    async close() {
      controller.abort();
      await pump;
    },
  };
}

export const waitFor = async (check: () => boolean | Promise<boolean>, timeout = 5_000): Promise<void> => {
  const t = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > t) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
};

/**
 * One HTTP/1.1 exchange over a raw socket, for requests a client library would refuse or
 * normalise (a malformed Host). Resolves with the parsed answer; status 0 when the server
 * closed the connection without one.
 */
export async function rawRequest(port: number, text: string, timeout = 5_000): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const { connect } = await import("node:net");
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let data = "";
    const timer = setTimeout(() => (socket.destroy(), reject(new Error("no answer within " + timeout + " ms"))), timeout);
    socket.on("data", (chunk: Buffer) => (data += chunk.toString("utf8")));
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      const at = data.indexOf("\r\n\r\n");
      if (at < 0) return resolve({ status: 0, headers: {}, body: data });
      const [statusLine, ...lines] = data.slice(0, at).split("\r\n");
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(":");
        headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      let body = data.slice(at + 4);
      if (headers["transfer-encoding"] === "chunked") {
        let out = "";
        for (let rest = body; ; ) {
          const nl = rest.indexOf("\r\n");
          const size = parseInt(rest.slice(0, nl), 16);
          if (!size) break;
          out += rest.slice(nl + 2, nl + 2 + size);
          rest = rest.slice(nl + 4 + size);
        }
        body = out;
      }
      resolve({ status: Number(statusLine!.split(" ")[1]), headers, body });
    });
    socket.write(text);
  });
}
