import { describe, expect, it } from "vitest";
import { openUsageStream } from "../../src/react/usageStream.js";

/** A fetch Response whose body sends `chunks` one by one, then stays open. */
function streamOf(chunks: string[]): Response {
  const encoder = new TextEncoder();
  return new Response(
    new ReadableStream({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      },
    }),
  );
}

describe("openUsageStream parses Server-Sent Events", () => {
  it("joins multi-line data, skips comments and other fields, accepts CRLF and events split across chunks", async () => {
    const seen: unknown[] = [];
    const chunks = [
      ": heartbeat\n\n",
      "retry: 500\nevent: usage\nid: 1\ndata: {\"version\":1,\ndata: \"counters\":[]}\n\n",
      "event: other\ndata: {\"version\":99}\n\n",
      "event: usage\r\ndata:{\"version\":2}\r\n\r\nevent: us",
      "age\ndata: {\"version\":3}\n\n",
    ];
    const stop = openUsageStream(async () => streamOf(chunks), (usage) => seen.push(usage), () => {});
    await expect.poll(() => seen.length).toBe(3);
    stop();
    expect(seen).toEqual([{ version: 1, counters: [] }, { version: 2 }, { version: 3 }]);
  });
});
