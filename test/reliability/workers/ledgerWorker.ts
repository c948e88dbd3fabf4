/**
 * A chaos worker: one process hammering reserve / commit / release / track / grant / usage on
 * hot and spread users through its own `createMeter`, logging every attempt and every answer
 * (synchronously, so that a SIGKILL loses nothing already answered) for the reference check.
 *
 * Behaves like a careful client: `unavailable` is retried with the same idempotency key (and
 * the same hold id for commit/release) until it gets an answer or gives up; anything else is
 * final. Stops cleanly on SIGTERM.
 *
 * Config: JSON in CHAOS_WORKER — { id, url, log, hotUsers, spreadUsers, seed, maxAttempts }.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { MeterError } from "../../../src/core/errors.js";
import { createMeter } from "../../../src/server/index.js";
import { CHAOS_PLANS, type ChaosCounter, type LogRecord, type OpType, type SendRecord } from "../harness/opLog.js";

interface WorkerConfig {
  id: string;
  url: string;
  log: string;
  hotUsers: string[];
  spreadUsers: string[];
  seed: number;
  maxAttempts: number;
}

const cfg = JSON.parse(process.env.CHAOS_WORKER ?? "{}") as WorkerConfig;
const fd = openSync(cfg.log, "a");
const write = (rec: LogRecord) => writeSync(fd, JSON.stringify(rec) + "\n");

// A small deterministic PRNG (mulberry32), seeded per worker incarnation.
let state = cfg.seed >>> 0;
const rand = () => {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// METERKIT_TEST_BATCH=1 (see test/helpers/batch-setup.ts) reaches this child process through its environment.
const meter = createMeter({
  database: cfg.url, plans: CHAOS_PLANS, defaultPlan: "chaos", sweepInterval: 0, poolSize: 4,
  ...(process.env.METERKIT_TEST_BATCH === "1" ? { batch: true } : {}),
});
let stopping = false;
process.on("SIGTERM", () => {
  stopping = true;
});

let seq = 0;
const newOp = () => `${cfg.id}.${++seq}`;

type Outcome<T> = { ok: true; value: T } | { ok: false; code: string; reason?: string };

/** One logical operation: attempts until an answer that is not `unavailable`, or gives up. */
async function call<T>(op: string, type: OpType, fields: Partial<SendRecord>, fn: () => Promise<T>): Promise<Outcome<T>> {
  for (let attempt = 0; ; attempt++) {
    write({ k: "send", op, w: cfg.id, type, attempt, t: Date.now(), ...fields });
    try {
      const value = await fn();
      write({ k: "ok", op, w: cfg.id, t: Date.now(), result: value as Record<string, unknown> });
      return { ok: true, value };
    } catch (err) {
      const code = err instanceof MeterError ? err.code : `non_meter_error:${(err as Error)?.name ?? typeof err}`;
      const reason = err instanceof MeterError && typeof err.details.reason === "string" ? err.details.reason : undefined;
      const retry = code === "unavailable" && attempt + 1 < cfg.maxAttempts && !stopping;
      write({ k: "err", op, w: cfg.id, t: Date.now(), code, message: String((err as Error)?.message ?? err).slice(0, 300), ...(reason ? { reason } : {}), final: !retry });
      if (!retry) return { ok: false, code, ...(reason ? { reason } : {}) };
      await sleep(Math.min(50 * 2 ** Math.min(attempt, 4), 500) + int(0, 50));
    }
  }
}

const user = () => (rand() < 0.5 ? pick(cfg.hotUsers) : pick(cfg.spreadUsers));
const counter = (): ChaosCounter => (rand() < 0.55 ? "tokens" : "strict");

async function reserveFlow() {
  const u = user();
  const c = counter();
  const amount = int(1, 400);
  const ttl = int(1_500, 6_000);
  const op = newOp();
  // A retry sends exactly the same arguments: the idempotency key is bound to them.
  const r = await call(op, "reserve", { user: u, counter: c, amount }, () =>
    meter.reserve(u, c, amount, { idempotencyKey: op, ttl, metadata: { op } }),
  );
  if (!r.ok || !r.value.allowed) return;
  const hold = r.value.reservationId;
  await sleep(int(0, 30)); // the model call
  const roll = rand();
  if (roll < 0.1) return; // abandoned: the hold must expire by itself
  if (roll < 0.3) {
    await call(newOp(), "release", { hold, user: u, counter: c }, () => meter.release(hold));
    return;
  }
  // A strict counter never charges beyond the hold (its overage would be recorded anyway).
  const actual = c === "strict" ? int(0, amount) : int(0, Math.ceil(amount * 1.3));
  await call(newOp(), "commit", { hold, user: u, counter: c, actual }, () => meter.commit(hold, { actual }));
}

async function trackFlow(refund: boolean) {
  const u = user();
  const c = counter();
  const amount = refund ? int(1, 100) : int(1, 200);
  const op = newOp();
  await call(op, refund ? "refund" : "track", { user: u, counter: c, amount }, () =>
    meter.track(u, refund ? `${c}.refund` : c, amount, { idempotencyKey: op, metadata: { op } }),
  );
}

async function grantFlow() {
  const u = user();
  const c = counter();
  const amount = int(100, 1_500);
  const op = newOp();
  await call(op, "grant", { user: u, counter: c, amount }, () => meter.grant(u, c, amount, { idempotencyKey: op, metadata: { op } }));
}

async function usageFlow() {
  const u = user();
  await call(newOp(), "usage", { user: u }, () => meter.usage(u));
}

async function main() {
  while (!stopping) {
    const roll = rand();
    if (roll < 0.55) await reserveFlow();
    else if (roll < 0.7) await trackFlow(false);
    else if (roll < 0.77) await trackFlow(true);
    else if (roll < 0.84) await grantFlow();
    else await usageFlow();
  }
  await meter.close().catch(() => {});
  closeSync(fd);
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`worker ${cfg.id} crashed: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
