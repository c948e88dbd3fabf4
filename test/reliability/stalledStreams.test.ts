import { internalsOf } from "../../src/server/internals.js";
import express from "express";
import { createServer, type Server } from "node:http";
import { connect, type AddressInfo, type Socket } from "node:net";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import type { LimitGroup } from "../../src/core/types.js";
import { meterRouter } from "../../src/express/index.js";
import { createMeterHandler, toNodeHandler } from "../../src/server/index.js";
import { liveStats } from "../../src/server/live/liveHub.js";
import { testMeter, type TestMeter } from "../helpers/meter.js";
import { openSse, waitFor } from "../http/fixtures.js";
import { countFailures, recordFigures } from "./harness/report.js";

// Clients that open a live stream and never read it. Each one pins the server's socket send
// buffer (megabytes) until the server gives up on it: the stream must be dropped AND its
// connection destroyed, and the per-user limit must count connections, not streams the hub
// still fans out to — through the Web handler on plain Node and through Express alike.
const failures = countFailures(afterEach);
setFlagsFromString("--expose-gc");
/** A full garbage collection: what the adapter holds for a stream must survive one. */
const gc = runInNewContext("gc") as () => void;
const PER_USER = 3;
/** A plan whose Usage is ~40 kB, so that a handful of changes fills a stalled socket. */
const WIDE: Record<string, LimitGroup> = Object.fromEntries(
  Array.from({ length: 20 }, (_, i) => [`c${i}`, { quota: 1_000_000_000, label: `Counter ${i} `.padEnd(2_000, "·") }]),
);
let t: TestMeter;
const figures: Record<string, number> = {};

beforeAll(async () => {
  t = await testMeter({ plans: { wide: { limits: WIDE } }, meters: { ev: { counter: "c0" } } });
  for (const u of ["node-user", "express-user"]) await t.meter.upsertSubscription({ userId: u, planId: "wide" });
});
afterAll(async () => {
  recordFigures("stalled live streams", { operations: Object.keys(figures).length, violations: failures.n, ...figures });
  await t.cleanup();
});

const LIVE = { heartbeat: 100, maxStreamsPerUser: PER_USER };
const identify = (value: string | string[] | null | undefined) => (typeof value === "string" ? value : null);

/** A server on a free port that remembers its sockets by the client's port. */
async function serve(kind: "node" | "express"): Promise<{ port: number; path: string; sockets: Map<number, Socket>; server: Server }> {
  let server: Server;
  if (kind === "node") {
    server = createServer(toNodeHandler(createMeterHandler<unknown>(t.meter, { identify: (r) => identify(r.headers.get("x-session")), live: LIVE })));
  } else {
    const app = express();
    app.use("/api/meter", meterRouter(t.meter, { identify: (req) => identify(req.headers["x-session"]), live: LIVE }));
    server = createServer(app);
  }
  const sockets = new Map<number, Socket>();
  server.on("connection", (s: Socket) => {
    const port = s.remotePort!;
    sockets.set(port, s);
    s.once("close", () => sockets.delete(port));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as AddressInfo).port, path: kind === "node" ? "/usage/stream" : "/api/meter/usage/stream", sockets, server };
}

/** A raw client that opens the stream, checks it was accepted, then never reads another byte. */
async function stalledReader(port: number, path: string, user: string): Promise<Socket> {
  const s = connect(port, "127.0.0.1");
  s.on("error", () => {});
  await new Promise((r) => s.once("connect", r));
  const head = new Promise<string>((resolve) =>
    s.once("data", (chunk: Buffer) => {
      s.pause(); // from here on, nothing is read: the kernel buffers fill up
      resolve(chunk.toString("latin1"));
    }),
  );
  s.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nx-session: ${user}\r\n\r\n`);
  expect((await head).split("\r\n")[0]).toBe("HTTP/1.1 200 OK");
  return s;
}

describe.each(["node", "express"] as const)("stalled stream readers (%s)", (kind) => {
  test(`are dropped and their sockets destroyed; the per-user limit (${PER_USER}) counts open connections`, async () => {
    const user = `${kind}-user`;
    const { port, path, sockets, server } = await serve(kind);
    const url = `http://127.0.0.1:${port}${path}`;
    const stalled = await Promise.all(Array.from({ length: PER_USER }, () => stalledReader(port, path, user)));
    try {
      const serverSide = () => stalled.map((c) => sockets.get(c.localPort!)).filter((s): s is Socket => s !== undefined && !s.destroyed);
      expect(serverSide()).toHaveLength(PER_USER);
      gc();

      // While they are open, one more stream for that user is refused.
      const extra = await fetch(url, { headers: { "x-session": user } });
      expect(extra.status).toBe(429);
      await extra.body?.cancel();

      // Changes pile up in the stalled connections until the server gives up on them.
      const started = Date.now();
      let changes = 0;
      while (serverSide().length > 0 && Date.now() - started < 20_000) {
        await t.meter.track(user, "ev", 1);
        changes++;
        if (changes % 20 === 0) await new Promise((r) => setTimeout(r, 50));
      }
      figures[`${kind}: changes until every stalled socket was destroyed`] = changes;
      figures[`${kind}: ms until every stalled socket was destroyed`] = Date.now() - started;
      expect(serverSide()).toHaveLength(0);

      // Their slots are free again: a reading client gets its stream.
      await waitFor(() => (liveStats(internalsOf(t.meter))?.streams ?? 0) === 0, 5_000).catch(() => {
        throw new Error(`stream slots still taken: ${JSON.stringify(liveStats(internalsOf(t.meter)))}`);
      });
      const fresh = await openSse(url, { "x-session": user });
      try {
        expect(fresh.res.status).toBe(200);
        expect((await fresh.next()).userId).toBe(user);
      } finally {
        await fresh.close();
      }
    } finally {
      for (const s of stalled) s.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
