/**
 * `npx tsx tools/httpPairCpu.ts`: where the CPU of one reserve+commit pair goes, direct and over
 * HTTP (the pair and the handler process of `bench/http.ts`) and through the bare HTTP floor of
 * `bench/httpFloor.ts` in the same process: CPU µs per pair of the calling
 * process, of the handler process and of PostgreSQL (every backend and auxiliary process of the
 * embedded server, fsync on), context switches per pair (voluntary + involuntary), pairs/s.
 * `CLIENTS` (default 1), `SECONDS` per cell (default 4), `ROUNDS` (default 2; the modes alternate).
 * `PROF=dir` writes `--cpu-prof` profiles of the handler process there; `PERF=file` records the
 * HTTP runs of both Node processes with `perf record` (run this tool with `node
 * --perf-basic-prof --import tsx` to name the caller's JavaScript functions too).
 */
import { fork, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { createMeterClient } from "../src/client/index.js";
import type { MeterApi } from "../src/core/types.js";
import { createMeter } from "../src/server/index.js";
import { floorPair } from "../bench/httpFloor.js";
import { benchDatabase, loadFor } from "../bench/util.js";

const CLIENTS = Number(process.env.CLIENTS ?? 1);
const SECONDS = Number(process.env.SECONDS ?? 4);
const ROUNDS = Number(process.env.ROUNDS ?? 2);
const SECRET = "sk_bench_0123456789abcdefghijklmnop";
const TICK = 100; // USER_HZ

const db = await benchDatabase();
const meter = createMeter({
  database: db.url,
  plans: { bench: { limits: { tokens: { quota: 1e15, period: "none" } } } },
  defaultPlan: "bench",
  schema: "bench_http",
  poolSize: 32,
  sweepInterval: 0,
});
await meter.migrate();
const users = Array.from({ length: 100 }, (_, i) => `hb_u${i}`);
for (const u of users) await meter.upsertSubscription({ userId: u, planId: "bench" });

const prof = process.env.PROF;
const child = fork(fileURLToPath(new URL("../bench/http.ts", import.meta.url)), ["--meterkit-bench-http-server"], {
  execArgv: ["--import", "tsx", ...(prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`] : []), ...(process.env.PERF ? ["--perf-basic-prof"] : [])],
  env: { ...process.env, DATABASE_URL: db.url },
  stdio: ["ignore", "inherit", "inherit", "ipc"],
});
const { port, floorPort } = await new Promise<{ port: number; floorPort: number }>((r) => child.once("message", r));
/** CPU µs (user, system) and context switches (voluntary, involuntary) of a process, from /proc. */
function proc(pid: number): number[] {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  const st = readFileSync(`/proc/${pid}/status`, "utf8");
  const cs = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(st)![1]);
  return [(Number(f[11]) * 1e6) / TICK, (Number(f[12]) * 1e6) / TICK, cs("voluntary_ctxt_switches"), cs("nonvoluntary_ctxt_switches")];
}
const sum = (xs: number[][]) => xs.reduce((a, b) => a.map((v, i) => v + b[i]!), [0, 0, 0, 0]);
const admin = new pg.Client({ connectionString: db.url });
await admin.connect();
/** Every process of the PostgreSQL server (backends and auxiliary processes), summed. */
async function pgProc(): Promise<number[]> {
  const { rows } = await admin.query<{ pid: number }>("SELECT pid FROM pg_stat_activity");
  return sum(rows.flatMap(({ pid }) => {
    try {
      return [proc(pid)];
    } catch {
      return []; // gone
    }
  }));
}

const client = createMeterClient({ url: `http://127.0.0.1:${port}`, secretKey: SECRET });
const pair = (api: MeterApi, key: boolean) => async (w: number) => {
  const r = await api.reserve(users[w]!, "tokens", 1_000, key ? { idempotencyKey: randomUUID() } : {});
  if (!r.allowed) throw new Error("denied");
  await api.commit(r.reservationId, { actual: 400 });
};
const modes = [
  { mode: "direct, key on reserve", run: pair(meter, true) },
  { mode: "HTTP client", run: pair(client, false) },
  // The same pair through a bare node:http route in the handler's process (bench/httpFloor.ts).
  { mode: "HTTP floor", run: floorPair(`http://127.0.0.1:${floorPort}`, users, Math.max(CLIENTS, 1)) },
];
const rates = new Map<string, number[]>();
for (let round = 0; round < ROUNDS; round++) {
  for (const { mode, run } of modes) {
    await loadFor(CLIENTS, 300, run);
    const at = async () => [proc(process.pid), proc(child.pid!), await pgProc()];
    const perf =
      process.env.PERF && mode.startsWith("HTTP")
        ? spawn("perf", ["record", "-F", "1999", "-g", "-o", `${process.env.PERF}.${round}`, "-p", `${process.pid},${child.pid}`], { stdio: "ignore" })
        : null;
    if (perf) await new Promise((r) => setTimeout(r, 300));
    const before = await at();
    const r = await loadFor(CLIENTS, SECONDS * 1000, run);
    const after = await at();
    if (perf) {
      perf.kill("SIGINT");
      await new Promise((r) => perf.once("exit", r));
    }
    const n = r.ops;
    const per = (i: number) => {
      const [u, s, v, iv] = after[i]!.map((x, j) => (x - before[i]![j]!) / n);
      return `${(u! + s!).toFixed(0)} µs (sys ${s!.toFixed(0)}), cs ${v!.toFixed(1)}+${iv!.toFixed(1)}`;
    };
    rates.set(mode, [...(rates.get(mode) ?? []), n / r.seconds]);
    console.log(`${mode.padEnd(24)} ${CLIENTS} clients: ${(n / r.seconds).toFixed(0).padStart(5)} pairs/s; per pair: caller ${per(0)} | handler ${per(1)} | postgres ${per(2)}`);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const first = median(rates.get(modes[0]!.mode)!);
for (const [mode, xs] of rates) {
  console.log(`${mode.padEnd(24)} median ${median(xs).toFixed(0)} pairs/s (${xs.map((x) => x.toFixed(0)).join(", ")}), ÷ direct ${(median(xs) / first).toFixed(2)}`);
}
child.send("exit");
await new Promise((r) => child.once("exit", r));
await admin.end();
await meter.close();
await db.stop();
