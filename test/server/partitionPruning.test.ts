import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createMeter, type CreateMeterOptions, type Meter } from "../../src/server/index.js";
import { internalsOf } from "../../src/server/internals.js";
import { freshDatabase } from "../helpers/db.js";
import { GLOBAL_TABLES, PARTITIONS, partitionByUser } from "../helpers/partitionByUser.js";

/*
 * "Every ledger transaction touches one user": proved on the ledger's tables hash-partitioned
 * by user_id (test/helpers/partitionByUser.ts, the layout Citus gives tables distributed by
 * user id). Each operation runs with auto_explain logging the plan of every statement, nested
 * ones inside the PL/pgSQL functions included, back to this client as a notice; every
 * statement that reads or writes a partitioned table must reach exactly one partition (pruned
 * when planned, or at executor start-up, which removes the other subplans before the plan is
 * logged). Inserts route each row by its user_id at run time; their plans show no partition,
 * and the rows they take come from statements checked here too.
 *
 * Each operation runs under custom plans (parameters known when planning) and under generic
 * plans (what a PL/pgSQL statement uses after five calls, and what a Citus router needs: the
 * distribution column bound to a parameter).
 */

interface Exception {
  /** Matches the statement's text. */
  statement: RegExp;
  /** Why it reaches every partition, and the smallest change that makes it prune. */
  why: string;
  /** Who fixes it. */
  fix: string;
}

/**
 * Statements that cannot prune yet, with the reason and the smallest fix: empty since
 * migration 0030 (docs/scale.md lists the seven it held). An entry that no longer
 * matches any statement fails the last test, so this list never outlives its reason.
 */
export const NOT_PRUNED_YET: Exception[] = [];

/** Statements that are global by nature (they look for work across all users), and why. */
export const GLOBAL_BY_NATURE: Exception[] = [
  {
    statement: /FROM holds WHERE status = 'open' AND expires_at <= clock\(\)\s+ORDER BY expires_at LIMIT p_limit/,
    why: "op_sweep finds expired holds of every user (by expiry); each user's holds are then expired under that user's lock by statements that prune. On Citus a multi-shard query, off the hot path.",
    fix: "none needed",
  },
];

const PLANS: CreateMeterOptions["plans"] = {
  all: {
    limits: {
      tokens: { quota: 100_000 },
      credits: { quota: 500, unit: "cents" },
      tokens_in: { quota: 10_000 },
      tokens_out: { quota: 10_000 },
      requests: { quota: 100, period: "minute", overage: "reject" },
      inflight: { kind: "concurrency", quota: 5 },
    },
  },
};
const METERS: CreateMeterOptions["meters"] = {
  "llm.tokens": { counter: "tokens" },
  "llm.cost": { counter: "credits", price: "input" },
  "llm.input": { counter: "tokens_in", counts: "input" },
  "llm.output": { counter: "tokens_out", counts: "output" },
  "llm.slot": { counter: "inflight" },
  "api.requests": { counter: "requests" },
};
const PRICES = { "gpt-4o": { input: "2.50", output: "10.00" } };

// auto_explain in every session of the meter's pool: plans of nested statements, as JSON notices.
const EXPLAIN = [
  "session_preload_libraries=auto_explain",
  "auto_explain.log_min_duration=0",
  "auto_explain.log_nested_statements=on",
  "auto_explain.log_format=json",
  "auto_explain.log_level=notice",
].map((s) => `-c ${s}`).join(" ");

let db: Awaited<ReturnType<typeof freshDatabase>>;
let pool: pg.Pool;
let meter: Meter;
/** The same ledger on the batched path (same one-connection pool): concurrent calls share an op_batch. */
let batched: Meter;
let recording: string[] | null = null;
/** partition name → its partitioned table */
const parentOf = new Map<string, string>();
const partitioned = new Set<string>();

beforeAll(async () => {
  db = await freshDatabase();
  const setup = createMeter({ database: db.url, plans: PLANS, meters: METERS, prices: PRICES, sweepInterval: 0 });
  await setup.migrate();
  await setup.close();
  await partitionByUser(db.url, "meterkit");
  // One connection: the meter's calls, the raw calls and the plan_cache_mode setting share it.
  pool = new pg.Pool({ connectionString: db.url, max: 1, options: EXPLAIN });
  pool.on("connect", (client) => client.on("notice", (n) => recording?.push(n.message ?? "")));
  meter = createMeter({ database: pool, plans: PLANS, meters: METERS, prices: PRICES, sweepInterval: 0 });
  batched = createMeter({ database: pool, plans: PLANS, meters: METERS, prices: PRICES, sweepInterval: 0, batch: true });
  const { rows } = await pool.query<{ part: string; parent: string }>(
    `SELECT c.relname AS part, p.relname AS parent FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     JOIN pg_class p ON p.oid = i.inhparent WHERE p.relnamespace = 'meterkit'::regnamespace AND p.relkind = 'p'`,
  );
  for (const r of rows) {
    parentOf.set(r.part, r.parent);
    partitioned.add(r.parent);
  }
});
afterAll(async () => {
  await batched.close();
  await meter.close();
  await pool.end();
  await db.drop();
});

interface PlanNode {
  "Relation Name"?: string;
  Plans?: PlanNode[];
  [k: string]: unknown;
}

export interface StatementPlan {
  text: string;
  /** partitioned table → the partitions its plan reaches */
  reaches: Map<string, Set<string>>;
}

/** The statements one call ran, each with the partitions its plan reaches. */
function statementsOf(notices: string[]): StatementPlan[] {
  const out: StatementPlan[] = [];
  for (const message of notices) {
    const at = message.indexOf("{");
    if (!message.startsWith("duration:") || at < 0) continue;
    const logged = JSON.parse(message.slice(at)) as { "Query Text": string; Plan: PlanNode };
    const reaches = new Map<string, Set<string>>();
    const walk = (node: PlanNode) => {
      const rel = node["Relation Name"];
      if (rel && parentOf.has(rel)) {
        const parent = parentOf.get(rel)!;
        if (!reaches.has(parent)) reaches.set(parent, new Set());
        reaches.get(parent)!.add(rel);
      } else if (rel && partitioned.has(rel) && !reaches.has(rel)) {
        reaches.set(rel, new Set()); // an INSERT's target: rows routed one by one
      }
      for (const child of node.Plans ?? []) walk(child);
    };
    walk(logged.Plan);
    if (reaches.size > 0) out.push({ text: logged["Query Text"].trim(), reaches });
  }
  return out;
}

const prunes = (s: StatementPlan) => [...s.reaches.values()].every((parts) => parts.size <= 1);

// One user's state for the operations below; ids flow from one step to the next.
const ids: Record<string, string> = {};
const user = "u_" + randomUUID().slice(0, 8);
const paymentIntent = "pi_" + randomUUID().replace(/-/g, "");

/** Every operation of the ledger, each on one user. */
const OPERATIONS: Record<string, () => Promise<unknown>> = {
  subscribe: () => meter.upsertSubscription({ userId: user, planId: "all" }),
  usage: () => meter.usage(user),
  grant: () => meter.grant(user, "tokens", 5_000, { idempotencyKey: "g_" + randomUUID() }),
  reserve: async () => {
    const r = await meter.reserve(user, "llm.tokens", 100, { idempotencyKey: "r_" + randomUUID() });
    if (!r.allowed) throw new Error("denied");
    ids.hold = r.reservationId;
  },
  commit: () => meter.commit(ids.hold!, { actual: 60 }),
  refund: () => meter.track(user, "llm.tokens.refund", 10, { reservationId: ids.hold! }),
  reserveToRelease: async () => {
    const r = await meter.reserve(user, "llm.tokens", 50);
    if (!r.allowed) throw new Error("denied");
    ids.released = r.reservationId;
  },
  release: () => meter.release(ids.released!),
  reservation: () => meter.reservation(ids.hold!),
  track: () => meter.track(user, "llm.tokens", 7, { idempotencyKey: "t_" + randomUUID() }),
  trackPriced: () => meter.track(user, "llm.cost", 1_234, { model: "gpt-4o" }),
  adjustUp: () => meter.adjust(user, "tokens", 5, { reason: "support" }),
  adjustDown: () => meter.adjust(user, "tokens", -3, { reason: "support" }),
  reserveMulti: async () => {
    const r = await meter.reserve(user, { "llm.input": 100, "llm.output": 50, "llm.slot": 1 });
    if (!r.allowed) throw new Error("denied");
    ids.multi = r.reservationId;
  },
  commitMulti: () => meter.commit(ids.multi!, { actual: { "llm.input": 40 } }),
  reserveMultiToRelease: async () => {
    const r = await meter.reserve(user, { "llm.input": 10, "llm.output": 5 });
    if (!r.allowed) throw new Error("denied");
    ids.multiReleased = r.reservationId;
  },
  releaseMulti: () => meter.release(ids.multiReleased!),
  rateTrack: () => meter.track(user, "api.requests", 1),
  rateReserve: async () => {
    const r = await meter.reserve(user, "api.requests", 1);
    if (r.allowed) await meter.commit(r.reservationId);
  },
  concurrencySlot: async () => {
    const r = await meter.reserve(user, "llm.slot", 1);
    if (r.allowed) await meter.release(r.reservationId);
  },
  // A batch of one user's hot-path calls: the first leaves alone, the rest share one op_batch
  // (its envelope's statements and every operation's, nested).
  batch: async () => {
    const [a, b, m] = await Promise.all([
      batched.reserve(user, "llm.tokens", 1),
      batched.reserve(user, "llm.tokens", 20),
      batched.reserve(user, { "llm.input": 10, "llm.output": 5 }),
      batched.track(user, "llm.tokens", 3, { idempotencyKey: "bt_" + randomUUID() }),
      batched.reserve(user, "llm.tokens", 30, { idempotencyKey: "br_" + randomUUID() }),
    ]);
    if (!a.allowed || !b.allowed || !m.allowed) throw new Error("denied");
    await Promise.all([batched.track(user, "api.requests", 1), batched.commit(a.reservationId, { actual: 1 }), batched.release(b.reservationId), batched.commit(m.reservationId)]);
    if (!recording?.some((n) => n.includes(".op_batch("))) throw new Error("no op_batch ran: the calls did not batch");
  },
  stripeGrant: () =>
    pool.query("SELECT meterkit.op_stripe_grant($1, 'checkout.session.completed', $2, 'tokens', 1000, $3, $4, 500, 'usd', 'fp', $5, $6, '{}')", [
      "evt_" + randomUUID(), user, "cs_" + randomUUID(), paymentIntent, "grt_" + randomUUID(), "debt_" + randomUUID(),
    ]),
  clawback: () =>
    pool.query("SELECT meterkit.op_clawback($1, 'charge.refunded', $2, 500, NULL, $3)", ["evt_" + randomUUID(), paymentIntent, "debt_" + randomUUID()]),
  grantAfterDebt: () => meter.grant(user, "tokens", 100),
  entries: () => meter.entries(user, { limit: 10 }),
  usageByDay: () => meter.usageByDay(user, { days: 7 }),
  audit: () => meter.audit(user),
  expiringHold: async () => {
    await meter.reserve(user, "llm.tokens", 5, { ttl: 1 });
    await new Promise((r) => setTimeout(r, 5));
  },
  sweep: () => meter.sweepExpired(),
  eraseUser: () => meter.eraseUser(user),
};

/** Runs every operation once under `mode`, and returns each one's statements. */
async function runAll(mode: "force_custom_plan" | "force_generic_plan"): Promise<Array<{ op: string; statements: StatementPlan[] }>> {
  await pool.query(`SET plan_cache_mode = ${mode}`);
  const out = [];
  for (const [op, run] of Object.entries(OPERATIONS)) {
    recording = [];
    await run();
    await internalsOf(meter).notifier.flush();
    const notices = recording;
    recording = null;
    out.push({ op, statements: statementsOf(notices) });
  }
  return out;
}

describe("on tables hash-partitioned by user id, every ledger statement reaches one partition", () => {
  test(`the per-user tables are partitioned (${PARTITIONS} ways) and the global ones stay plain`, async () => {
    const { rows } = await pool.query<{ name: string; kind: string }>(
      `SELECT c.relname AS name, c.relkind AS kind FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'user_id'
       WHERE c.relnamespace = 'meterkit'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1`,
    );
    for (const r of rows) expect([r.name, r.kind]).toEqual([r.name, Object.hasOwn(GLOBAL_TABLES, r.name) ? "r" : "p"]);
    expect([...partitioned].sort()).toEqual(expect.arrayContaining(["balances", "entries", "grants", "holds", "idempotency", "subscriptions"]));
    for (const t of partitioned) expect([...parentOf.values()].filter((p) => p === t)).toHaveLength(PARTITIONS);
  });

  const used = new Set<Exception>();

  test.each(["force_custom_plan", "force_generic_plan"] as const)("with %s", async (mode) => {
    const ran = await runAll(mode);
    const unexpected: string[] = [];
    let checked = 0;
    for (const { op, statements } of ran) {
      for (const s of statements) {
        checked++;
        if (prunes(s)) continue;
        const excused = [...NOT_PRUNED_YET, ...GLOBAL_BY_NATURE].filter((e) => e.statement.test(s.text));
        for (const e of excused) used.add(e);
        const where = [...s.reaches].map(([t, parts]) => `${t}: ${parts.size} partitions`).join(", ");
        const line = `${op}: ${where}\n    ${s.text.replace(/\s+/g, " ").slice(0, 300)}`;
        if (process.env.PRUNING_REPORT) console.log(`[${mode}] ${excused.length ? "known" : "NEW"} ${line}`);
        if (excused.length === 0) unexpected.push(line);
      }
    }
    // Every operation ran statements on partitioned tables (a harness that saw nothing proves nothing).
    for (const { op, statements } of ran) expect(statements.length, `statements seen for ${op}`).toBeGreaterThan(0);
    expect(checked).toBeGreaterThan(50);
    expect(unexpected, "statements that reach more than one partition").toEqual([]);
  });

  test("every listed exception still matches a statement that does not prune (remove the ones fixed)", () => {
    const stale = [...NOT_PRUNED_YET, ...GLOBAL_BY_NATURE].filter((e) => !used.has(e)).map((e) => String(e.statement));
    expect(stale).toEqual([]);
  });
});
