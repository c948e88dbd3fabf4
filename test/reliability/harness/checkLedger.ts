import type pg from "pg";
import type { AuditDifference } from "../../../src/server/index.js";
import type { ErrRecord, LogRecord, OkRecord, OpType, SendRecord } from "./opLog.js";

/** Every logical operation a worker tried, with what it was told. */
export interface LoggedOp {
  op: string;
  worker: string;
  type: OpType;
  first: SendRecord;
  attempts: number;
  ok: OkRecord | null;
  errors: ErrRecord[];
}

export interface ReferenceReport {
  ops: number;
  acknowledged: number;
  /** Operations with no answer (worker killed mid-call, or gave up on `unavailable`). */
  unacknowledged: number;
  /** …of which the database shows applied (exactly once) / not applied. */
  unacknowledgedApplied: number;
  errorsByCode: Record<string, number>;
  violations: string[];
}

/** Groups log records by operation id. */
export function collectOps(records: LogRecord[]): Map<string, LoggedOp> {
  const ops = new Map<string, LoggedOp>();
  for (const r of records) {
    let o = ops.get(r.op);
    if (r.k === "send") {
      if (!o) ops.set(r.op, (o = { op: r.op, worker: r.w, type: r.type, first: r, attempts: 0, ok: null, errors: [] }));
      o.attempts++;
    } else if (o) {
      if (r.k === "ok") o.ok = o.ok ?? r;
      else o.errors.push(r);
    }
  }
  return ops;
}

/** Answers a careful client may get; anything else is a wrong answer. */
function documentedError(o: LoggedOp, e: ErrRecord): boolean {
  if (e.code === "unavailable") return true;
  if ((o.type === "commit" || o.type === "release") && e.code === "conflict" && e.reason === "expired") return true;
  if (o.type === "track" && o.first.counter === "strict" && e.code === "limit_reached") return true;
  return false;
}

interface HoldRow { id: string; user_id: string; counter_key: string; amount: string; status: string; result: Record<string, unknown> | null; op: string | null }
interface EntryRow { kind: string; amount: string; hold_id: string | null; op: string | null; user_id: string; counter_key: string }
interface GrantRow { id: string; amount: string; op: string | null; user_id: string; counter_key: string }

/**
 * The reference check (TigerBeetle-auditor style): rebuilds what the database must contain from
 * the acknowledged operations and compares. Call after every worker stopped, every orphaned
 * hold's expiry passed and the sweeper ran.
 */
export async function checkAgainstReference(
  db: pg.Pool | pg.Client,
  schema: string,
  records: LogRecord[],
  audit: AuditDifference[],
  quotas: Record<string, number>,
): Promise<ReferenceReport> {
  const ops = collectOps(records);
  const violations: string[] = [];
  const errorsByCode: Record<string, number> = {};
  const v = (msg: string) => {
    if (violations.length < 200) violations.push(msg);
  };

  const holds = (await db.query<HoldRow>(`SELECT id, user_id, counter_key, amount::text, status, result, metadata->>'op' AS op FROM ${schema}.holds`)).rows;
  const entries = (await db.query<EntryRow>(`SELECT kind, amount::text, hold_id, metadata->>'op' AS op, user_id, counter_key FROM ${schema}.entries`)).rows;
  const grants = (await db.query<GrantRow>(`SELECT id, amount::text, metadata->>'op' AS op, user_id, counter_key FROM ${schema}.grants`)).rows;
  const holdsByOp = groupBy(holds, (h) => h.op ?? "");
  const holdById = new Map(holds.map((h) => [h.id, h]));
  const resolutions = groupBy(entries.filter((e) => e.kind === "commit" || e.kind === "release" || e.kind === "expire"), (e) => e.hold_id ?? "");
  const reserveEntries = groupBy(entries.filter((e) => e.kind === "reserve"), (e) => e.hold_id ?? "");
  const usageEntriesByOp = groupBy(entries.filter((e) => e.kind === "track" || e.kind === "refund"), (e) => e.op ?? "");
  const grantsByOp = groupBy(grants, (g) => g.op ?? "");
  const resolversByHold = new Map<string, LoggedOp[]>();

  // Expected totals per user|counter, from acknowledged answers (and, for unanswered
  // operations, from what the database shows — after checking it applied at most once).
  const expUsed = new Map<string, number>();
  const expGranted = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, n: number) => m.set(k, (m.get(k) ?? 0) + n);

  let acknowledged = 0;
  let unacknowledged = 0;
  let unackApplied = 0;
  for (const o of ops.values()) {
    for (const e of o.errors) {
      errorsByCode[e.code] = (errorsByCode[e.code] ?? 0) + 1;
      if (!documentedError(o, e)) v(`${o.type} ${o.op}: undocumented answer ${e.code} (${e.reason ?? ""}): ${e.message}`);
    }
    const finalErr = o.errors.find((e) => e.final && e.code !== "unavailable");
    const answered = o.ok !== null || finalErr !== undefined;
    if (answered) acknowledged++;
    else unacknowledged++;
    const key = `${o.first.user}|${o.first.counter}`;
    const res = o.ok?.result;

    switch (o.type) {
      case "reserve": {
        const found = holdsByOp.get(o.op) ?? [];
        if (found.length > 1) v(`reserve ${o.op}: ${found.length} holds for one idempotent reservation`);
        const h = found[0];
        if (res) {
          if (res.allowed === true) {
            if (!h) v(`reserve ${o.op}: acknowledged hold ${String(res.reservationId)} is missing`);
            else if (h.id !== res.reservationId || Number(h.amount) !== res.amount || h.user_id !== o.first.user || h.counter_key !== o.first.counter)
              v(`reserve ${o.op}: acknowledged ${JSON.stringify(res)} but the database has ${JSON.stringify(h)}`);
          } else if (h) v(`reserve ${o.op}: acknowledged as denied but a hold ${h.id} exists`);
        } else if (!answered && h) unackApplied++;
        for (const x of found) if ((reserveEntries.get(x.id) ?? []).length !== 1) v(`hold ${x.id}: ${(reserveEntries.get(x.id) ?? []).length} reserve entries`);
        break;
      }
      case "commit":
      case "release": {
        const list = resolversByHold.get(o.first.hold!) ?? [];
        list.push(o);
        resolversByHold.set(o.first.hold!, list);
        const h = holdById.get(o.first.hold!);
        if (!h) {
          v(`${o.type} ${o.op}: hold ${o.first.hold} does not exist`);
          break;
        }
        const commitEntry = (resolutions.get(h.id) ?? []).find((e) => e.kind === "commit");
        if (res) {
          if (o.type === "commit") {
            if (h.status !== "committed") v(`commit ${o.op}: acknowledged but hold ${h.id} is ${h.status}`);
            else if (h.result?.committed !== res.committed || Number(commitEntry?.amount) !== res.committed)
              v(`commit ${o.op}: acknowledged ${String(res.committed)} but the hold says ${String(h.result?.committed)} and the entry ${commitEntry?.amount}`);
            else if (res.committed !== o.first.actual) v(`commit ${o.op}: asked ${o.first.actual}, charged ${String(res.committed)}`);
            else add(expUsed, key, res.committed as number);
          } else if (h.status !== "released") v(`release ${o.op}: acknowledged but hold ${h.id} is ${h.status}`);
        } else if (finalErr) {
          if (h.status !== "expired") v(`${o.type} ${o.op}: answered ${finalErr.code}/${finalErr.reason} but hold ${h.id} is ${h.status}`);
        } else {
          // No answer: the hold is resolved by this call (once) or it expired.
          const mine = o.type === "commit" ? "committed" : "released";
          if (h.status === mine) {
            unackApplied++;
            if (o.type === "commit") {
              if (Number(commitEntry?.amount) !== o.first.actual) v(`commit ${o.op} (unanswered): charged ${commitEntry?.amount}, asked ${o.first.actual}`);
              add(expUsed, key, Number(commitEntry?.amount));
            }
          } else if (h.status !== "expired") v(`${o.type} ${o.op} (unanswered): hold ${h.id} is ${h.status}`);
        }
        break;
      }
      case "track":
      case "refund": {
        const found = usageEntriesByOp.get(o.op) ?? [];
        if (found.length > 1) v(`${o.type} ${o.op}: written ${found.length} times`);
        if (res) {
          if (found.length !== 1 || Number(found[0]!.amount) !== res.amount) v(`${o.type} ${o.op}: acknowledged ${String(res.amount)} but the entries say ${JSON.stringify(found.map((e) => e.amount))}`);
          else if (o.type === "track" && res.amount !== o.first.amount) v(`track ${o.op}: asked ${o.first.amount}, charged ${String(res.amount)}`);
          else if (o.type === "refund" && !((res.amount as number) <= 0 && (res.amount as number) >= -o.first.amount!)) v(`refund ${o.op}: gave back ${String(res.amount)} for ${o.first.amount}`);
          else add(expUsed, key, res.amount as number);
        } else if (finalErr) {
          if (found.length > 0) v(`${o.type} ${o.op}: answered ${finalErr.code} but written`);
        } else if (found.length === 1) {
          unackApplied++;
          add(expUsed, key, Number(found[0]!.amount));
        }
        break;
      }
      case "grant": {
        const found = grantsByOp.get(o.op) ?? [];
        if (found.length > 1) v(`grant ${o.op}: granted ${found.length} times`);
        if (res) {
          if (found.length !== 1 || Number(found[0]!.amount) !== res.amount || found[0]!.id !== res.grantId) v(`grant ${o.op}: acknowledged ${JSON.stringify(res)} but found ${JSON.stringify(found)}`);
          else add(expGranted, key, res.amount as number);
        } else if (finalErr) {
          if (found.length > 0) v(`grant ${o.op}: answered ${finalErr.code} but granted`);
        } else if (found.length === 1) {
          unackApplied++;
          add(expGranted, key, Number(found[0]!.amount));
        }
        break;
      }
      case "usage": {
        const counters = (res?.counters ?? []) as Array<{ key: string; quota: number; granted: number; used: number; held: number; remaining: number }>;
        for (const c of counters) {
          if (c.key === "strict" && c.used + c.held > c.quota + c.granted) v(`usage ${o.op} of ${o.first.user}: strict used ${c.used} + held ${c.held} > quota ${c.quota} + granted ${c.granted}`);
          if (c.remaining < 0 || c.held < 0) v(`usage ${o.op}: negative figures ${JSON.stringify(c)}`);
        }
        break;
      }
    }
  }

  // Every hold: resolved exactly once, never left open, never resolved by two different callers.
  for (const h of holds) {
    const r = resolutions.get(h.id) ?? [];
    if (r.length !== 1) v(`hold ${h.id}: ${r.length} resolution entries (${r.map((e) => e.kind).join(",")})`);
    if (h.status === "open") v(`hold ${h.id}: still open after its expiry and a sweep`);
    if (!h.op || ops.get(h.op)?.type !== "reserve") v(`hold ${h.id}: no reservation in the logs created it`);
    const resolvers = resolversByHold.get(h.id) ?? [];
    if ((h.status === "committed" || h.status === "released") && resolvers.length === 0) v(`hold ${h.id}: ${h.status} though nobody resolved it`);
  }
  // Every usage and grant row comes from a logged operation (no phantom writes).
  for (const e of entries) {
    if ((e.kind === "track" || e.kind === "refund") && (!e.op || !ops.has(e.op))) v(`entry ${e.kind} ${e.amount} for ${e.user_id}: no logged operation`);
  }
  for (const g of grants) if (!g.op || !ops.has(g.op)) v(`grant ${g.id}: no logged operation`);

  // Totals: the balances equal the sum of what the clients were told.
  const used = (await db.query<{ k: string; used: string }>(`SELECT user_id || '|' || counter_key AS k, sum(used)::text AS used FROM ${schema}.balances GROUP BY 1`)).rows;
  const granted = (await db.query<{ k: string; amount: string }>(`SELECT user_id || '|' || counter_key AS k, sum(amount)::text AS amount FROM ${schema}.grants GROUP BY 1`)).rows;
  const keys = new Set([...expUsed.keys(), ...used.map((r) => r.k)]);
  for (const k of keys) {
    const actual = Number(used.find((r) => r.k === k)?.used ?? 0);
    if (actual !== (expUsed.get(k) ?? 0)) v(`used of ${k}: reference ${expUsed.get(k) ?? 0}, database ${actual}`);
  }
  for (const k of new Set([...expGranted.keys(), ...granted.map((r) => r.k)])) {
    const actual = Number(granted.find((r) => r.k === k)?.amount ?? 0);
    if (actual !== (expGranted.get(k) ?? 0)) v(`granted to ${k}: reference ${expGranted.get(k) ?? 0}, database ${actual}`);
  }
  // used + held ≤ quota + granted where overage is rejected (held is 0 now: check used alone).
  for (const [k, u] of expUsed) {
    const [, counter] = k.split("|");
    const q = quotas[counter!];
    if (q !== undefined && u > q + (expGranted.get(k) ?? 0)) v(`${k}: used ${u} exceeds quota ${q} + granted ${expGranted.get(k) ?? 0} on a counter that rejects overage`);
  }
  for (const d of audit) v(`audit: ${JSON.stringify(d)}`);

  return { ops: ops.size, acknowledged, unacknowledged, unacknowledgedApplied: unackApplied, errorsByCode, violations };
}

function groupBy<T>(xs: T[], key: (x: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const x of xs) {
    const k = key(x);
    const list = m.get(k);
    if (list) list.push(x);
    else m.set(k, [x]);
  }
  return m;
}
