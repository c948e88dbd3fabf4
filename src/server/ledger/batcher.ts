import type pg from "pg";
import { MeterError } from "../../core/errors.js";
import { query, statementName, toMeterError } from "../db.js";
import type { LedgerClaim } from "./context.js";
import { runAlone } from "./runAlone.js";
import { reservationUser } from "./reservationId.js";

/** `createMeter({ batch })`: coalescing of concurrent ledger calls (see docs/server.md, "Batched path"). */
export interface BatchOptions {
  /** Most operations in one SQL call. Default 64. */
  maxSize?: number;
  /**
   * Most batches in flight at once (each on its own pooled connection). A call on an idle meter
   * goes out at once; calls that arrive meanwhile leave together when a slot is free, each batch
   * taking its share of what is queued and in flight. A further batch goes in flight beside
   * others only while each would carry at least a quarter of `maxSize` operations (16 by
   * default): a smaller one pays a round trip and a commit of its own for little. A batch beside
   * others takes only calls of users no batch in flight holds, and never passes over the same
   * call twice. Default 2: on the 2-core
   * machine of docs/benchmarks.md, where Node and Postgres share the cores, 2 gained 10–20 % over
   * 1 with 32–64 callers over many users and on one hot user, and changed nothing below 16.
   */
  concurrency?: number;
}

/** The operations that batch: the hot path's writes. Everything else goes out alone. */
export const BATCHED_FUNCTIONS: ReadonlySet<string> = new Set(["op_reserve", "op_reserve_multi", "op_resolve", "op_resolve_multi", "op_track"]);

/** Sends ledger calls, coalescing those that arrive while earlier ones are in flight. */
export interface Batcher {
  /**
   * Runs `fn(params…)`, after claiming `claim` when given (an HTTP `Idempotency-Key`), and answers
   * exactly as the unbatched call would (result or MeterError).
   */
  call<T>(fn: string, params: unknown[], claim?: LedgerClaim | null): Promise<T>;
}

interface Pending {
  fn: string;
  params: unknown[];
  /** The HTTP Idempotency-Key to claim right before the call (0041), if any. */
  claim: LedgerClaim | null;
  /** The user whose rows the call locks; null when only the database can tell (an unrouted id). */
  user: string | null;
  /** Whether a batch beside others went ahead of this call (it could not go: see `take`). */
  passed: boolean;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/** The user a batched call locks: a reserve's or track's first argument, the user a routed reservation id names. */
function userOf(fn: string, params: unknown[]): string | null {
  const first = params[0];
  if (typeof first !== "string") return null;
  return fn === "op_resolve" || fn === "op_resolve_multi" ? reservationUser(first) : first;
}

/** One element of op_batch's answer (see migrations/0035_batch_fast.sql). */
type BatchAnswer = { ok: unknown } | { error: { code: string; message: string; detail: string | null; hint: string | null; constraint?: string | null } };

/** Checks `createMeter({ batch })`; null when batching is off. */
export function resolveBatchOptions(value: boolean | BatchOptions | undefined): Required<BatchOptions> | null {
  if (value === undefined || value === false) return null;
  const o: BatchOptions = value === true ? {} : value;
  if (o === null || typeof o !== "object") {
    throw new MeterError("invalid_request", "createMeter: `batch` must be a boolean or { maxSize, concurrency }.", { field: "batch" });
  }
  const int = (v: number | undefined, name: string, dflt: number) => {
    if (v === undefined) return dflt;
    if (!Number.isInteger(v) || v < 1 || v > 10_000) {
      throw new MeterError("invalid_request", `createMeter: batch.${name} must be an integer from 1 to 10000.`, { field: `batch.${name}` });
    }
    return v;
  };
  return { maxSize: int(o.maxSize, "maxSize", 64), concurrency: int(o.concurrency, "concurrency", 2) };
}

/**
 * A batcher on `pool` for the ledger in `schema`. No timer: a call on an idle meter (nothing in
 * flight, nothing queued, no batch just answered) leaves at once, as the plain statement (a lone
 * call pays nothing).
 * Calls that arrive while a batch is in flight queue, and leave in arrival order as one
 * `op_batch` call when a slot is free, once the current turn of the event loop is over (a
 * `setImmediate`): the callers of a batch that just answered call again in that turn (a
 * reserve's caller commits), so they all ride the next batch instead of the first of them
 * leaving alone ahead of the rest. With `concurrency` above 1 the queue is shared out so the
 * batches in flight stay about the same size (a batch leaving takes at most its share of
 * what is queued and in flight), rather than a batch of one next to a batch of everyone else,
 * and only as many go in flight as keep each at a quarter of `maxSize` or more.
 */
export function createBatcher(pool: pg.Pool, schema: string, options: Required<BatchOptions>): Batcher {
  const queue: Pending[] = [];
  let inFlight = 0;
  /** Operations in the batches in flight. */
  let opsInFlight = 0;
  let scheduled = false;
  const batchText = `SELECT ${schema}.op_batch($1::jsonb) AS r`;

  /** Fewest operations each batch must carry for another one to go in flight beside it. */
  const minShare = Math.ceil(options.maxSize / 4);

  /** Users locked by the batches in flight (how many batches hold each). */
  const busy = new Map<string, number>();
  /** Batches in flight with a call whose user only the database knows. */
  let unknownInFlight = 0;
  const hold = (users: Set<string | null>, step: 1 | -1) => {
    for (const u of users) {
      if (u === null) unknownInFlight += step;
      else if (step === 1) busy.set(u, (busy.get(u) ?? 0) + 1);
      else if (busy.get(u) === 1) busy.delete(u);
      else busy.set(u, busy.get(u)! - 1);
    }
  };

  /** Whether the queue holds a batch's worth (minShare) of calls on users `batch` does not hold. */
  const besideFits = (batch: Pending[]): boolean => {
    const users = new Set(batch.map((p) => p.user));
    if (users.has(null)) return false;
    let free = 0;
    for (const p of queue) if (p.user !== null && !users.has(p.user) && ++free >= minShare) return true;
    return false;
  };

  /**
   * The next batch: the first `limit` queued calls, or, beside batches in flight, the first
   * `limit` of those on users no batch in flight locks (the others keep their place in the
   * queue). A batch beside another never waits for its locks: two batches on one hot user would
   * run one after the other anyway, each paying its own round trip and commit. And so a batch
   * that leaves alone takes up to `maxSize` when the rest of the queue could not make a batch
   * beside it (one hot user: cut to its share, it only carried half the callers).
   */
  const take = (limit: number): Pending[] => {
    if (inFlight === 0) {
      const batch = queue.splice(0, limit);
      if (queue.length > 0 && batch.length < options.maxSize && !besideFits(batch)) {
        batch.push(...queue.splice(0, options.maxSize - batch.length));
      }
      return batch;
    }
    // The oldest call was passed over once already: no batch goes ahead of it again, so the
    // batches in flight drain and it leaves with the next (a call whose user only the database
    // knows, or a busy user's, would otherwise wait for as long as batches keep overlapping).
    if (unknownInFlight > 0 || queue[0]!.passed) return [];
    const batch: Pending[] = [];
    const rest: Pending[] = [];
    const skipped: Pending[] = [];
    for (const p of queue) {
      if (batch.length < limit && p.user !== null && !busy.has(p.user)) batch.push(p);
      else {
        rest.push(p);
        if (batch.length < limit) skipped.push(p);
      }
    }
    // Too few to be worth a round trip and a commit of their own beside the others.
    if (batch.length < minShare) return [];
    for (const p of skipped) p.passed = true;
    queue.splice(0, queue.length, ...rest);
    return batch;
  };

  const pump = () => {
    scheduled = false;
    for (;;) {
      // As many batches in flight as `concurrency` allows, but only as many as keep each at
      // minShare operations or more: a small batch beside another pays a round trip and a commit
      // of its own for little (8 callers over 2 batches ran 25 % slower than over 1).
      const total = queue.length + opsInFlight;
      const slots = Math.max(1, Math.min(options.concurrency, Math.floor(total / minShare)));
      if (inFlight >= slots || queue.length === 0) break;
      const share = Math.ceil(total / slots);
      const batch = take(Math.min(options.maxSize, Math.max(1, share)));
      if (batch.length === 0) break;
      inFlight++;
      opsInFlight += batch.length;
      const users = new Set(batch.map((p) => p.user));
      hold(users, 1);
      void send(batch).finally(() => {
        inFlight--;
        opsInFlight -= batch.length;
        hold(users, -1);
        // A lone call answered with nobody waiting: nothing to gather, so its caller's next
        // call leaves at once too (one client in a loop pays nothing, not even a turn).
        if (batch.length > 1 || queue.length > 0) schedule();
      });
    }
  };
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(pump);
  };

  const send = async (batch: Pending[]): Promise<void> => {
    if (batch.length === 1) {
      const p = batch[0]!;
      try {
        p.resolve(await runAlone(pool, schema, p.fn, p.params, p.claim));
      } catch (err) {
        p.reject(err);
      }
      return;
    }
    let answers: BatchAnswer[];
    try {
      const payload = JSON.stringify(batch.map((p) => (p.claim ? { fn: p.fn, args: p.params, claim: [p.claim.key, p.claim.fingerprint] } : { fn: p.fn, args: p.params })));
      const { rows } = await query<{ r: string }>(pool, batchText, [payload], statementName(batchText));
      // JSON text (op_batch builds it from each result's own text; no json value to re-check).
      answers = JSON.parse(rows[0]!.r) as BatchAnswer[];
    } catch (err) {
      // The batch as a whole failed (network, timeout): every call in it gets that answer.
      for (const p of batch) p.reject(err);
      return;
    }
    batch.forEach((p, i) => {
      const a = answers[i];
      if (a && "ok" in a) p.resolve(a.ok);
      else if (a) p.reject(toMeterError(Object.assign(new Error(a.error.message), a.error)));
      else p.reject(new MeterError("internal", "Unexpected ledger error: the batch answered too few results."));
    });
  };

  return {
    call<T>(fn: string, params: unknown[], claim?: LedgerClaim | null): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        queue.push({ fn, params, claim: claim ?? null, user: userOf(fn, params), passed: false, resolve: resolve as (v: unknown) => void, reject });
        if (inFlight === 0 && !scheduled && queue.length === 1) pump();
        else schedule();
      });
    },
  };
}
