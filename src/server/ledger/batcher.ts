import type pg from "pg";
import { MeterError } from "../../core/errors.js";
import { query, statementName, toMeterError } from "../db.js";

/** `createMeter({ batch })`: coalescing of concurrent ledger calls (see docs/server.md, "Batched path"). */
export interface BatchOptions {
  /** Most operations in one SQL call. Default 64. */
  maxSize?: number;
  /**
   * Batches in flight at once (each on its own pooled connection). A call goes out at once
   * while fewer are in flight; otherwise it waits for the next batch. Default 1.
   */
  concurrency?: number;
}

/** The operations that batch: the hot path's writes. Everything else goes out alone. */
export const BATCHED_FUNCTIONS: ReadonlySet<string> = new Set(["op_reserve", "op_reserve_multi", "op_resolve", "op_resolve_multi", "op_track"]);

/** Sends ledger calls, coalescing those that arrive while earlier ones are in flight. */
export interface Batcher {
  /** Runs `fn(params…)` and answers exactly as the unbatched call would (result or MeterError). */
  call<T>(fn: string, params: unknown[]): Promise<T>;
}

interface Pending {
  fn: string;
  params: unknown[];
  resolve(value: unknown): void;
  reject(err: unknown): void;
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
  return { maxSize: int(o.maxSize, "maxSize", 64), concurrency: int(o.concurrency, "concurrency", 1) };
}

/**
 * A batcher on `pool` for the ledger in `schema`. No timer: a call that finds fewer than
 * `concurrency` batches in flight leaves at once (a lone call pays nothing); calls that arrive
 * meanwhile queue and leave together, in arrival order, as one `op_batch` call the moment a
 * batch returns. A batch of one is the plain statement (no subtransaction to pay for).
 */
export function createBatcher(pool: pg.Pool, schema: string, options: Required<BatchOptions>): Batcher {
  const queue: Pending[] = [];
  let inFlight = 0;
  const batchText = `SELECT ${schema}.op_batch($1::jsonb) AS r`;

  const pump = () => {
    while (inFlight < options.concurrency && queue.length > 0) {
      const batch = queue.splice(0, options.maxSize);
      inFlight++;
      void send(batch).finally(() => {
        inFlight--;
        pump();
      });
    }
  };

  const send = async (batch: Pending[]): Promise<void> => {
    if (batch.length === 1) {
      const p = batch[0]!;
      const placeholders = p.params.map((_, i) => `$${i + 1}`).join(", ");
      const text = `SELECT ${schema}.${p.fn}(${placeholders}) AS r`;
      try {
        const { rows } = await query<{ r: unknown }>(pool, text, p.params, statementName(text));
        p.resolve(rows[0]!.r);
      } catch (err) {
        p.reject(err);
      }
      return;
    }
    let answers: BatchAnswer[];
    try {
      const payload = JSON.stringify(batch.map((p) => ({ fn: p.fn, args: p.params })));
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
    call<T>(fn: string, params: unknown[]): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        queue.push({ fn, params, resolve: resolve as (v: unknown) => void, reject });
        pump();
      });
    },
  };
}
