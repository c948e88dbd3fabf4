/**
 * HTTP and live-balance benchmarks.
 *  (1) reserve+commit pairs through `meterkit/client` over HTTP vs direct `meter` calls, same
 *      database, same run, at 1, 8 and 32 clients, three repetitions interleaved: pairs/s
 *      (median and range), p50/p99 per pair, the ratio. Both sides do the same ledger work: the
 *      client sends an `Idempotency-Key` on every mutation (a fresh UUID when the caller gives
 *      none), which is the ledger's own idempotency key on reserve, so the direct side passes a
 *      fresh `idempotencyKey` on reserve too. A third row, direct without a key, shows what the
 *      key itself costs; two more, the same pairs with `batch: true` on both sides (a direct
 *      batched meter, and a handler process whose meter batches: keyed requests ride its batches);
 *      and a floor: the same pair through a bare `node:http` route in the handler's process that
 *      calls the meter directly (no secret key, checks, claim or client library) — the least an
 *      HTTP hop costs on this machine, so the HTTP ratio can be read against what any HTTP
 *      transport could reach;
 *  (2) live fan-out: 1,000 open SSE streams across 100 users; time from a commit to its event
 *      on each of the user's streams (p50/p99, goal p99 ≤ 100 ms) and server memory per stream.
 *      Where the time goes: when the commit returned, and when a listener of our own heard its
 *      NOTIFY; and the server's CPU time while the commits ran (an idle hub costs none).
 * The handler runs in a child process on a default `node:http` server (like a real
 * deployment), so the HTTP server, its LISTEN connection and its memory are measured apart from
 * the clients; it also counts the TCP connections it accepted (keep-alive: one per client).
 */
import { fork, type ChildProcess } from "node:child_process";
import pg from "pg";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { randomUUID } from "node:crypto";
import { createMeterClient } from "../src/client/index.js";
import type { MeterApi } from "../src/core/types.js";
import { createMeter, createMeterHandler, toNodeHandler, type CreateMeterOptions } from "../src/server/index.js";
import { liveStats } from "../src/server/live/liveHub.js";
import { createFloorServer, floorPair } from "./httpFloor.js";
import { loadFor, percentile, table } from "./util.js";
import { internalsOf } from "../src/server/internals.js";

const SECRET = "sk_bench_0123456789abcdefghijklmnop";
const SCHEMA = "bench_http";
const CLIENTS = [1, 8, 32];
const REPETITIONS = 3;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const STREAM_USERS = 100;
const STREAMS_PER_USER = 10;
const ROUNDS = 200;
const SERVER_FLAG = "--meterkit-bench-http-server";
/** `BENCH_HTTP_PARTS=pairs`, `=fanout` or `=pairs,fanout` (the default): which parts run. */
const PARTS = new Set((process.env.BENCH_HTTP_PARTS ?? "pairs,fanout").split(",").map((p) => p.trim()));

const meterOptions = (databaseUrl: string): CreateMeterOptions => ({
  database: databaseUrl,
  plans: { bench: { limits: { tokens: { quota: 1e15, period: "none" } } } },
  defaultPlan: "bench",
  schema: SCHEMA,
  poolSize: Math.max(...CLIENTS),
  sweepInterval: 0,
});

type Stats = { memory: NodeJS.MemoryUsage; streams: number; connections: number; cpu: NodeJS.CpuUsage };
type FromServer = { port: number; floorPort: number } | Stats;

/** The server process: the Web handler on node:http, answering memory questions over IPC. */
async function serve(databaseUrl: string): Promise<void> {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const meter = createMeter({ ...meterOptions(databaseUrl), batch: process.env.BENCH_HTTP_SERVER_BATCH === "1" });
  const handler = createMeterHandler<unknown>(meter, {
    secretKeys: SECRET,
    identify: (request) => request.headers.get("x-user"),
    live: { maxStreamsPerUser: STREAMS_PER_USER, maxStreams: 50_000 },
    onError: () => {},
  });
  // Node's defaults (keepAliveTimeout 5 s): what an app that calls createServer() gets.
  const server = createServer(toNodeHandler(handler));
  let connections = 0;
  server.on("connection", () => connections++);
  // The floor: the least an HTTP hop to this meter can cost (bench/httpFloor.ts).
  const floor = createFloorServer(meter);
  await new Promise<void>((r) => floor.listen(0, "127.0.0.1", r));
  floor.on("connection", () => connections++);
  server.listen(0, "127.0.0.1", () =>
    process.send!({ port: (server.address() as AddressInfo).port, floorPort: (floor.address() as AddressInfo).port } satisfies FromServer));
  process.on("message", (m: string) => {
    if (m === "memory") {
      const cpu = process.cpuUsage(); // before the collections below, which are ours, not the server's
      for (let i = 0; i < 3; i++) gc();
      process.send!({ memory: process.memoryUsage(), streams: liveStats(internalsOf(meter))?.streams ?? 0, connections, cpu } satisfies FromServer);
    } else if (m === "exit") {
      for (const srv of [server, floor]) {
        srv.closeAllConnections();
        srv.close();
      }
      void meter.close().finally(() => process.exit(0));
    }
  });
}

if (process.argv.includes(SERVER_FLAG)) await serve(process.env.DATABASE_URL!);

/** The handler's process; `batch`: its meter has `batch: true`. */
function startServer(databaseUrl: string, batch = false): Promise<{ child: ChildProcess; url: string; floorUrl: string; ask(): Promise<Stats> }> {
  const child = fork(fileURLToPath(import.meta.url), [SERVER_FLAG], {
    execArgv: ["--import", "tsx"],
    env: { ...process.env, DATABASE_URL: databaseUrl, BENCH_HTTP_SERVER_BATCH: batch ? "1" : "0" },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`bench server exited with ${code}`)));
    child.once("message", (m: FromServer) => {
      if (!("port" in m)) return;
      resolve({
        child,
        url: `http://127.0.0.1:${m.port}`,
        floorUrl: `http://127.0.0.1:${m.floorPort}`,
        ask: () =>
          new Promise((res) => {
            child.once("message", (r: FromServer) => res(r as Stats));
            child.send("memory");
          }),
      });
    });
  });
}

/** One open SSE stream read by fetch; calls `onEvent` per `usage` event (only its `id:` is parsed). */
async function openStream(url: string, user: string, onEvent: () => void, signal: AbortSignal): Promise<void> {
  const res = await fetch(`${url}/usage/stream`, { headers: { "x-user": user }, signal });
  if (!res.ok || !res.body) throw new Error(`stream for ${user}: HTTP ${res.status}`);
  const reader = res.body.getReader();
  let first = true;
  let resolveFirst!: () => void;
  const opened = new Promise<void>((r) => (resolveFirst = r));
  void (async () => {
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        const text = decoder.decode(value, { stream: true });
        for (let at = text.indexOf("event: usage"); at >= 0; at = text.indexOf("event: usage", at + 1)) {
          if (first) {
            first = false;
            resolveFirst();
          } else onEvent();
        }
      }
    } catch {
      // aborted at the end
    }
  })();
  return opened;
}

export default async function httpBench({ databaseUrl }: { databaseUrl: string }): Promise<void> {
  const meter = createMeter(meterOptions(databaseUrl));
  await meter.migrate();
  const users = Array.from({ length: Math.max(...CLIENTS, STREAM_USERS) }, (_, i) => `hb_u${i}`);
  for (const u of users) await meter.upsertSubscription({ userId: u, planId: "bench" });
  const server = await startServer(databaseUrl);
  // The same pairs with batching on both sides: a direct meter and a handler's meter with `batch: true`.
  const batchedMeter = PARTS.has("pairs") ? createMeter({ ...meterOptions(databaseUrl), batch: true }) : null;
  const batchedServer = PARTS.has("pairs") ? await startServer(databaseUrl, true) : null;
  try {
    // (1) The same reserve+commit pair, direct and through the remote client.
    if (PARTS.has("pairs")) await pairsPart();
    // (2) Live fan-out.
    if (PARTS.has("fanout")) await fanOutPart();
  } finally {
    for (const s of [server, batchedServer]) {
      if (!s) continue;
      const exited = new Promise((r) => s.child.once("exit", r));
      s.child.send("exit");
      await exited;
    }
    await batchedMeter?.close();
    await meter.close();
  }

  async function pairsPart(): Promise<void> {
    const client = createMeterClient({ url: server.url, secretKey: SECRET });
    const batchedClient = createMeterClient({ url: batchedServer!.url, secretKey: SECRET });
    const pair = (api: MeterApi, key: boolean) => async (w: number) => {
      const t0 = performance.now();
      const r = await api.reserve(users[w]!, "tokens", 1_000, key ? { idempotencyKey: randomUUID() } : {});
      if (!r.allowed) throw new Error("bench reserve denied");
      await api.commit(r.reservationId, { actual: 400 });
      return performance.now() - t0;
    };
    const floorRun = floorPair(server.floorUrl, users, Math.max(...CLIENTS));
    const modes = [
      { mode: "direct meter, idempotencyKey on reserve", run: pair(meter, true) },
      { mode: "meterkit/client over HTTP", run: pair(client, false) }, // the client sends its own keys
      { mode: "direct meter, no key", run: pair(meter, false) },
      { mode: "floor: bare node:http route calling the meter (key on reserve)", run: floorRun },
      { mode: "batch: true — direct meter, idempotencyKey on reserve", run: pair(batchedMeter!, true), server: batchedServer! },
      { mode: "batch: true — meterkit/client over HTTP", run: pair(batchedClient, false), server: batchedServer! },
    ];
    const runs = new Map<string, { rates: number[]; latencies: number[]; connections: number[] }>();
    // The four unbatched modes interleaved, then the two batched ones interleaved: a batched
    // cell writes 2–4× the rows of the others, and the vacuum and WAL work it leaves behind must
    // not fall on the unbatched cells that follow it.
    for (const group of [modes.slice(0, 4), modes.slice(4)]) for (let rep = 0; rep < REPETITIONS; rep++) {
      for (const clients of CLIENTS) {
        for (const m of group) {
          const { mode, run } = m;
          const host = ("server" in m && m.server) || server;
          // Warm-up (JIT, pools, keep-alive sockets); the client's idle sockets close after 4 s,
          // so the HTTP runs warm up again after the direct runs in between.
          await loadFor(clients, 500, run);
          const before = (await host.ask()).connections;
          const r = await loadFor(clients, SECONDS * 1000, run);
          const cell = runs.get(`${mode}|${clients}`) ?? { rates: [], latencies: [], connections: [] };
          cell.rates.push(r.ops / r.seconds);
          cell.latencies.push(...r.latencies);
          cell.connections.push((await host.ask()).connections - before);
          runs.set(`${mode}|${clients}`, cell);
        }
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const rows: Array<Record<string, string | number>> = [];
    const ratios: Array<Record<string, string | number>> = [];
    for (const clients of CLIENTS) {
      for (const { mode } of modes) {
        const cell = runs.get(`${mode}|${clients}`)!;
        rows.push({
          mode,
          clients,
          "pairs/s (median)": Math.round(median(cell.rates)),
          range: `${Math.round(Math.min(...cell.rates))}–${Math.round(Math.max(...cell.rates))}`,
          "p50 ms": percentile(cell.latencies, 50),
          "p99 ms": percentile(cell.latencies, 99),
        });
      }
      const rate = (i: number) => median(runs.get(`${modes[i]!.mode}|${clients}`)!.rates);
      ratios.push({
        clients,
        "HTTP / direct (same work)": rate(1) / rate(0),
        "HTTP / direct without key": rate(1) / rate(2),
        "floor: bare HTTP hop / direct (same work)": rate(3) / rate(0),
        "HTTP / floor": rate(1) / rate(3),
        "batch: true, HTTP / direct (same work)": rate(5) / rate(4),
        "batch: true HTTP / unbatched HTTP": rate(5) / rate(1),
      });
    }
    table(`reserve+commit: remote client over HTTP vs direct (${REPETITIONS} × ${SECONDS} s per cell, interleaved; p50/p99 over all repetitions)`, rows);
    table("ratio of medians (goal ≥ 0.5 at 32 clients)", ratios);
    const opened = CLIENTS.map((c) => `${c} clients: ${runs.get(`${modes[1]!.mode}|${c}`)!.connections.join(", ")}`).join("; ");
    console.log(`\nnew TCP connections during the timed HTTP runs (keep-alive: none once warm): ${opened}`);
  }

  async function fanOutPart(): Promise<void> {
    const before = await server.ask();
    const abort = new AbortController();
    const streamUsers = users.slice(0, STREAM_USERS);
    const waiting = new Map<string, { t0: number; left: number; done: () => void }>();
    /** The round under way (one at a time), kept after its events arrived: our listener may hear the NOTIFY later than the server's. */
    type Round = { user: string; t0: number; committed: boolean; heard: boolean };
    let round: Round | null = null;
    const latencies: number[] = [];
    const committed: number[] = [];
    const announced: number[] = [];
    // A LISTEN of our own on the meter's channel: when the commit's announcement reached Postgres.
    const listener = new pg.Client({ connectionString: databaseUrl });
    await listener.connect();
    listener.on("notification", (n) => {
      // Only after the commit returned: a late NOTIFY of the reserve before it is not the commit's.
      if (round && round.user === n.payload && round.committed && !round.heard) {
        round.heard = true;
        announced.push(performance.now() - round.t0);
      }
    });
    await listener.query(`LISTEN "${internalsOf(meter).channel}"`);
    const lastOfUser: number[] = [];
    const opens: Promise<void>[] = [];
    for (const u of streamUsers) {
      for (let k = 0; k < STREAMS_PER_USER; k++) {
        opens.push(
          openStream(
            server.url,
            u,
            () => {
              const w = waiting.get(u);
              if (!w) return;
              const ms = performance.now() - w.t0;
              latencies.push(ms);
              if (--w.left === 0) {
                lastOfUser.push(ms);
                waiting.delete(u);
                w.done();
              }
            },
            abort.signal,
          ),
        );
      }
      await Promise.all(opens.slice(-STREAMS_PER_USER));
    }
    const after = await server.ask();
    const streams = after.streams;
    // Nothing changes now: what the server spends is the hub's own upkeep.
    await new Promise((res) => setTimeout(res, 1_000));
    const idle = await server.ask();
    const perStream = (a: number, b: number) => Math.round((a - b) / streams);

    for (let i = 0; i < ROUNDS; i++) {
      const u = streamUsers[i % STREAM_USERS]!;
      const r = await meter.reserve(u, "tokens", 1_000);
      if (!r.allowed) throw new Error("bench reserve denied");
      // Let the reserve's own event pass before timing the commit's.
      await new Promise((res) => setTimeout(res, 15));
      const t0 = performance.now();
      const r0: Round = { user: u, t0, committed: false, heard: false };
      round = r0;
      const arrived = new Promise<void>((done) => waiting.set(u, { t0, left: STREAMS_PER_USER, done }));
      await meter.commit(r.reservationId, { actual: 400 });
      committed.push(performance.now() - t0);
      r0.committed = true;
      await Promise.race([arrived, new Promise((res) => setTimeout(res, 2_000))]);
      waiting.delete(u);
    }
    const done = await server.ask();
    abort.abort();
    await listener.end();
    const cpuMs = (a: Stats, b: Stats) => Math.round((a.cpu.user + a.cpu.system - b.cpu.user - b.cpu.system) / 1000);
    table(`live fan-out: ${streams} open streams across ${STREAM_USERS} users, ${ROUNDS} commits`, [
      {
        measure: "commit → event, every stream",
        samples: latencies.length,
        "p50 ms": percentile(latencies, 50),
        "p99 ms": percentile(latencies, 99),
        "max ms": Math.max(...latencies),
      },
      {
        measure: "commit → event on the user's last stream",
        samples: lastOfUser.length,
        "p50 ms": percentile(lastOfUser, 50),
        "p99 ms": percentile(lastOfUser, 99),
        "max ms": Math.max(...lastOfUser),
      },
    ]);
    table("where the time goes (commit → …; p50/p99 over the rounds)", [
      { step: "commit returned", samples: committed.length, "p50 ms": percentile(committed, 50), "p99 ms": percentile(committed, 99) },
      { step: "NOTIFY heard by a listener of ours", samples: announced.length, "p50 ms": percentile(announced, 50), "p99 ms": percentile(announced, 99) },
    ]);
    console.log(`\nserver CPU: ${cpuMs(idle, after)} ms in 1 s with ${streams} idle streams; ${cpuMs(done, idle)} ms during the ${ROUNDS} commits`);
    table("server memory per open stream (after GC)", [
      {
        streams,
        "heap B/stream": perStream(after.memory.heapUsed, before.memory.heapUsed),
        "external B/stream": perStream(after.memory.external, before.memory.external),
        "rss B/stream": perStream(after.memory.rss, before.memory.rss),
      },
    ]);
    const p99 = percentile(latencies, 99);
    console.log(`\nfan-out goal p99 ≤ 100 ms: ${p99 <= 100 ? "met" : "NOT met"} (${p99.toFixed(1)} ms)`);
  }
}
