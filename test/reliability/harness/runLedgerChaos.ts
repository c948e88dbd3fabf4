import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { createMeter } from "../../../src/server/index.js";
import { checkAgainstReference, collectOps, type ReferenceReport } from "./checkLedger.js";
import { startChaosProxy } from "./chaosProxy.js";
import { CHAOS_PLANS, readLog, type LogRecord } from "./opLog.js";
import { startOwnPostgres } from "./ownPostgres.js";

export type FaultKind = "kill-worker" | "cut-connections" | "terminate-backends" | "restart-postgres" | "crash-postgres";
const FAULTS: FaultKind[] = ["kill-worker", "cut-connections", "restart-postgres", "kill-worker", "terminate-backends", "crash-postgres"];

export interface LedgerChaosOptions {
  /** Worker processes running at once. */
  workers: number;
  /** How long faults are injected, in ms. */
  durationMs: number;
  /** Mean time between faults, in ms. */
  faultEveryMs: number;
  hotUsers: number;
  spreadUsers: number;
  /** How long Postgres stays down on a restart, in ms. */
  downMs: number;
  /** A client must get an answer again within this long after a fault ends, in ms. */
  recoveryMs: number;
  seed: number;
  progress?: (line: string) => void;
}

export interface LedgerChaosReport extends ReferenceReport {
  attempts: number;
  faults: Record<FaultKind, number>;
  workerIncarnations: number;
  /** The longest time from the end of a fault to the first answer after it, in ms. */
  maxRecoveryMs: number;
  wallMs: number;
}

/**
 * Runs the ledger under fire: worker processes on a Postgres of our own, reached through a
 * proxy that can drop connections; meanwhile workers are SIGKILLed, connections cut, backends
 * terminated, Postgres restarted and crashed. Then every orphaned hold is left to expire, the
 * sweeper runs, and the database is checked against the workers' logs.
 */
export async function runLedgerChaos(o: LedgerChaosOptions): Promise<LedgerChaosReport> {
  const started = Date.now();
  const say = o.progress ?? (() => {});
  const pgServer = await startOwnPostgres();
  const proxy = await startChaosProxy({ port: pgServer.port });
  const logDir = mkdtempSync(join(tmpdir(), "meterkit-chaos-logs-"));
  const admin = createMeter({ database: pgServer.url, plans: CHAOS_PLANS, defaultPlan: "chaos", sweepInterval: 0, poolSize: 4 });
  const violations: string[] = [];
  const faults: Record<FaultKind, number> = { "kill-worker": 0, "cut-connections": 0, "terminate-backends": 0, "restart-postgres": 0, "crash-postgres": 0 };
  const faultEnds: number[] = [];
  const workers = new Map<string, { proc: ChildProcess; stderr: string; killed: boolean; exited: Promise<number | null> }>();
  let incarnations = 0;
  const hotUsers = Array.from({ length: o.hotUsers }, (_, i) => `hot-${i}`);
  const spreadUsers = Array.from({ length: o.spreadUsers }, (_, i) => `spread-${i}`);
  let rng = o.seed >>> 0;
  const rand = () => ((rng = (Math.imul(rng, 1664525) + 1013904223) >>> 0) / 4294967296);
  const workerPath = fileURLToPath(new URL("../workers/ledgerWorker.ts", import.meta.url));
  const proxyUrl = `postgres://postgres:postgres@127.0.0.1:${proxy.port}/postgres`;

  const spawnWorker = () => {
    const id = `w${++incarnations}`;
    const cfg = { id, url: proxyUrl, log: join(logDir, `${id}.jsonl`), hotUsers, spreadUsers, seed: o.seed * 7919 + incarnations, maxAttempts: 60 };
    const proc = spawn(process.execPath, ["--import", "tsx", workerPath], {
      env: { ...process.env, CHAOS_WORKER: JSON.stringify(cfg) },
      stdio: ["ignore", "ignore", "pipe"],
    });
    const w = { proc, stderr: "", killed: false, exited: new Promise<number | null>((r) => proc.once("exit", (code) => r(code))) };
    proc.stderr!.on("data", (c: Buffer) => {
      if (w.stderr.length < 10_000) w.stderr += c.toString("utf8");
    });
    workers.set(id, w);
    void w.exited.then((code) => {
      workers.delete(id);
      if (!w.killed && code !== 0) violations.push(`worker ${id} exited with ${code}: ${w.stderr.slice(0, 2000)}`);
    });
  };

  try {
    await admin.migrate();
    for (const u of [...hotUsers, ...spreadUsers]) await admin.upsertSubscription({ userId: u, planId: "chaos" });
    for (let i = 0; i < o.workers; i++) spawnWorker();
    await new Promise((r) => setTimeout(r, 1_500)); // let them start (tsx) and warm up
    say(`chaos: ${o.workers} workers on ${hotUsers.length} hot and ${spreadUsers.length} spread users`);

    const until = Date.now() + o.durationMs;
    for (let n = 0; Date.now() < until; n++) {
      await new Promise((r) => setTimeout(r, o.faultEveryMs * (0.5 + rand())));
      if (Date.now() >= until) break;
      // The first round injects every kind once; afterwards at random.
      const kind = n < FAULTS.length ? FAULTS[n]! : FAULTS[Math.floor(rand() * FAULTS.length)]!;
      faults[kind]++;
      switch (kind) {
        case "kill-worker": {
          const alive = [...workers.values()].filter((w) => !w.killed);
          const victim = alive[Math.floor(rand() * alive.length)];
          if (victim) {
            victim.killed = true;
            victim.proc.kill("SIGKILL");
          }
          spawnWorker();
          break;
        }
        case "cut-connections":
          proxy.cut();
          break;
        case "terminate-backends": {
          const c = new pg.Client({ connectionString: pgServer.url });
          await c.connect();
          await c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'");
          await c.end();
          break;
        }
        case "restart-postgres":
          await pgServer.restart("fast", o.downMs);
          break;
        case "crash-postgres":
          await pgServer.restart("immediate", o.downMs);
          break;
      }
      faultEnds.push(Date.now());
      say(`fault ${kind} at +${Date.now() - started} ms (${workers.size} workers)`);
    }

    // Stop the workers (they finish or give up their current operation), then check.
    await new Promise((r) => setTimeout(r, o.recoveryMs));
    const stopping = [...workers.values()];
    for (const w of stopping) w.proc.kill("SIGTERM");
    const timeout = setTimeout(() => {
      for (const w of stopping) {
        if (w.proc.exitCode === null) {
          violations.push(`a worker did not stop within 20 s of SIGTERM`);
          w.killed = true;
          w.proc.kill("SIGKILL");
        }
      }
    }, 20_000);
    await Promise.all(stopping.map((w) => w.exited));
    clearTimeout(timeout);

    // Every orphaned hold must run out by itself: wait for the last expiry, then sweep.
    const pool = admin.internals.pool;
    const { rows } = await pool.query<{ ms: number | null }>(
      `SELECT ceil(extract(epoch FROM max(expires_at) - now()) * 1000)::float8 AS ms FROM meterkit.holds WHERE status = 'open'`,
    );
    await new Promise((r) => setTimeout(r, Math.max(0, rows[0]?.ms ?? 0) + 50));
    while ((await admin.sweepExpired(10_000)) > 0);

    const records: LogRecord[] = readdirSync(logDir).flatMap((f) => readLog(join(logDir, f)));
    const report = await checkAgainstReference(pool, "meterkit", records, await admin.audit(), rejectingQuotas());
    report.violations.unshift(...violations);

    // Recovery: every worker alive across a fault got an answer within recoveryMs of its end.
    const byWorker = new Map<string, LogRecord[]>();
    for (const r of records) {
      const list = byWorker.get(r.w);
      if (list) list.push(r);
      else byWorker.set(r.w, [r]);
    }
    let maxRecoveryMs = 0;
    for (const end of faultEnds) {
      let firstAnswer = Infinity;
      for (const [w, list] of byWorker) {
        const ts = list.map((r) => r.t);
        const alive = Math.min(...ts) < end && Math.max(...ts) > end + o.recoveryMs;
        const answer = list.find((r) => r.t >= end && (r.k === "ok" || (r.k === "err" && r.code !== "unavailable")));
        if (answer) firstAnswer = Math.min(firstAnswer, answer.t - end);
        if (alive && (!answer || answer.t - end > o.recoveryMs)) {
          report.violations.push(`worker ${w} got no answer within ${o.recoveryMs} ms after the fault ending at +${end - started} ms`);
        }
      }
      if (Number.isFinite(firstAnswer)) maxRecoveryMs = Math.max(maxRecoveryMs, firstAnswer);
    }
    const ops = collectOps(records);
    return {
      ...report,
      attempts: [...ops.values()].reduce((s, x) => s + x.attempts, 0),
      faults,
      workerIncarnations: incarnations,
      maxRecoveryMs,
      wallMs: Date.now() - started,
    };
  } finally {
    for (const w of workers.values()) {
      w.killed = true;
      w.proc.kill("SIGKILL");
    }
    await admin.close().catch(() => {});
    await proxy.close();
    await pgServer.destroy();
    rmSync(logDir, { recursive: true, force: true });
  }
}

/** Quota of every counter that rejects overage, by counter key. */
function rejectingQuotas(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, g] of Object.entries(CHAOS_PLANS.chaos!.limits)) if (g.overage === "reject") out[key] = g.quota ?? Number.MAX_SAFE_INTEGER;
  return out;
}
