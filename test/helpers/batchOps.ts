/** One operation of an op_batch call, as the batcher sends it (src/server/ledger/batcher.ts). */
export type BatchOp = { fn: string; args: unknown[]; claim?: [key: string, fingerprint: string] };

/**
 * The operations of an op_batch statement, read from the arguments of a wrapped pg
 * `client.query(…)` call (a config object, or text and values); null for any other statement.
 */
export function batchOps(args: unknown[]): BatchOp[] | null {
  const q = args[0] as string | { text?: unknown; values?: unknown[] };
  if (!String(typeof q === "string" ? q : q.text).includes(".op_batch(")) return null;
  const values = typeof q === "string" ? (args[1] as unknown[]) : q.values!;
  return JSON.parse(String(values[0])) as BatchOp[];
}
