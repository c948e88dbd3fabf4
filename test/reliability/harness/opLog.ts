import { readFileSync } from "node:fs";
import type { CreateMeterOptions } from "../../../src/server/index.js";

/** The plan every chaos user is on: one counter that records overage, one that rejects it. */
export const CHAOS_PLANS: CreateMeterOptions["plans"] = {
  chaos: {
    limits: {
      tokens: { quota: 20_000, unit: "tokens", period: "none", overage: "record" },
      strict: { quota: 2_000, unit: "tokens", period: "none", overage: "reject" },
    },
  },
};
export const CHAOS_COUNTERS = ["tokens", "strict"] as const;
export type ChaosCounter = (typeof CHAOS_COUNTERS)[number];

export type OpType = "reserve" | "commit" | "release" | "track" | "refund" | "grant" | "usage";

/** Written before every attempt of an operation (so a SIGKILL mid-call leaves a trace). */
export interface SendRecord {
  k: "send";
  op: string;
  w: string;
  type: OpType;
  attempt: number;
  t: number;
  user?: string;
  counter?: ChaosCounter;
  amount?: number;
  /** commit / release: the hold. */
  hold?: string;
  /** commit: what the worker asked to charge. */
  actual?: number;
}
/** An answer: the operation is acknowledged with this result. */
export interface OkRecord {
  k: "ok";
  op: string;
  w: string;
  t: number;
  result: Record<string, unknown>;
}
/** An error answer; `final` when the worker stopped retrying. */
export interface ErrRecord {
  k: "err";
  op: string;
  w: string;
  t: number;
  code: string;
  message: string;
  reason?: string;
  final: boolean;
}
export type LogRecord = SendRecord | OkRecord | ErrRecord;

/** Reads JSON lines; a torn last line (the writer was SIGKILLed mid-write) is skipped. */
export function readLog(path: string): LogRecord[] {
  const out: LogRecord[] = [];
  for (const line of readFileSync(path, "utf8").split("\n")) {
    if (!line) continue;
    try {
      out.push(JSON.parse(line) as LogRecord);
    } catch {
      // torn write
    }
  }
  return out;
}
