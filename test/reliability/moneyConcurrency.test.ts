import pg from "pg";
import Stripe from "stripe";
import { afterAll, beforeAll, expect, test } from "vitest";
import { createMeter, type LedgerEntry, type Meter } from "../../src/server/index.js";
import { internalsOf } from "../../src/server/internals.js";
import { startStripeStandIn, type StripeStandIn } from "../../src/testing/index.js";
import { freshDatabase } from "../helpers/db.js";
import { LedgerModel } from "../helpers/ledger-model.js";
import { PACKS, WEBHOOK_SECRET, paidSession, refundedCharge, stripeEvent } from "../stripe/helpers.js";
import { recordFigures } from "./harness/report.js";

// The money rules under concurrent callers, restarts and month rollovers. Each round is one
// deploy: a new meter (new pool, new process state) on the same database, its clock a few
// weeks after the last round's, so rounds cross month boundaries. In a round, every user gets a
// burst of concurrent calls: usage, usage refunds, promo grants, packs bought through the
// webhook, refunds of earlier packs (Stripe's cumulative amounts, delivered twice and out of
// order) and disputes. The ledger serialises one user's changes under its lock; the order it
// chose is the order of the user's entries. Replaying the reference model in that order must
// give every caller's answer, the same Usage and the same debt, and audit() must be clean.

const QUOTA = 300;
const USERS = ["mc-ann", "mc-ben", "mc-cat", "mc-dan"];
const ROUNDS = 6;
const START = Date.UTC(2026, 0, 10, 9, 0, 0);
const STEP = 19 * 24 * 3_600_000; // 19 days: every other round starts a new month

/** A small seeded generator, so a failure replays (the seed is in the test name). */
function rng(seed: number) {
  let s = seed >>> 0;
  return {
    next() {
      s = (s + 0x6d2b79f5) >>> 0;
      let t = s;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    },
    int(min: number, max: number) {
      return min + Math.floor(this.next() * (max - min + 1));
    },
  };
}
const SEED = 20261202;

let db: { url: string; drop: () => Promise<void> };
let standIn: StripeStandIn;
let stripe: Stripe;

beforeAll(async () => {
  db = await freshDatabase();
  standIn = await startStripeStandIn({ webhookSecret: WEBHOOK_SECRET });
  stripe = new Stripe("sk_test_standin", { ...standIn.clientOptions, maxNetworkRetries: 0 });
});
afterAll(async () => {
  await standIn?.close();
  await db?.drop();
});

/** One deploy: a meter on its own pool whose every connection sees the database clock at `at`. */
async function deploy(at: number): Promise<{ meter: Meter; pool: pg.Pool; deliver(event: object): Promise<unknown> }> {
  const pool = new pg.Pool({ connectionString: db.url, max: 8, options: `-c meterkit.clock=${new Date(at).toISOString()}` });
  pool.on("error", () => {});
  const meter = createMeter({
    database: pool,
    plans: { lenient: { limits: { tokens: { quota: QUOTA, period: "month", overage: "record" } } } },
    meters: { "llm.tokens": { counter: "tokens" } },
    defaultPlan: "lenient",
    sweepInterval: 0,
    stripe: { client: stripe, webhookSecret: WEBHOOK_SECRET, packs: PACKS, successUrl: "https://app.example.com/ok", cancelUrl: "https://app.example.com/no" },
  });
  await meter.migrate();
  const billing = internalsOf(meter).billing!;
  return {
    meter,
    pool,
    deliver(event) {
      const payload = JSON.stringify(event);
      return billing.webhook(Buffer.from(payload), stripe.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET }));
    },
  };
}

type Call =
  | { kind: "track"; op: string; amount: number }
  | { kind: "refund"; op: string; amount: number }
  | { kind: "grant"; op: string; amount: number; expiresAt: number }
  | { kind: "buy"; op: string; pi: string; credits: number; paid: number; session: ReturnType<typeof paidSession> }
  | { kind: "clawback"; op: string; pi: string; refunded: number; disputed: number; event: object };

interface Pack { pi: string; credits: number; paid: number; refunded: number; disputed: number }
interface UserState { model: LedgerModel; packs: Pack[]; lastEntry: string | null; answers: Map<string, unknown> }

/** The calls of one round for one user, in the order they are started (all at once). */
function plan(user: string, s: UserState, round: number, r: ReturnType<typeof rng>): Call[] {
  const calls: Call[] = [];
  let n = 0;
  const op = () => `${user}-r${round}-${n++}`;
  for (let i = r.int(3, 6); i > 0; i--) calls.push({ kind: "track", op: op(), amount: r.int(40, 700) });
  for (let i = r.int(1, 2); i > 0; i--) calls.push({ kind: "refund", op: op(), amount: r.int(20, 400) });
  // Credits of one expiry are spent oldest first, and "oldest" is the database clock, which is
  // the same for the whole round here: a round's promotional grant expires (in 200 days, so
  // after every later round's) to keep the order of spending defined. One pack per round.
  if (r.next() < 0.5) calls.push({ kind: "grant", op: op(), amount: r.int(50, 600), expiresAt: START + (round + 200) * 86_400_000 });
  if (r.next() < 0.8) {
    const credits = r.int(400, 1500);
    const paid = r.int(200, 2000);
    const session = paidSession(user, { credits, amount: paid });
    calls.push({ kind: "buy", op: op(), pi: session.payment_intent, credits, paid, session });
  }
  // Earlier packs: a refund to a higher cumulative amount, delivered twice, and now and then a dispute.
  for (const p of s.packs) {
    if (p.refunded < p.paid && r.next() < 0.6) {
      const refunded = Math.min(p.paid, p.refunded + r.int(1, Math.ceil(p.paid / 2)));
      const event = stripeEvent("charge.refunded", refundedCharge(p.pi, refunded, p.paid));
      calls.push({ kind: "clawback", op: op(), pi: p.pi, refunded, disputed: p.disputed, event });
      calls.push({ kind: "clawback", op: op(), pi: p.pi, refunded, disputed: p.disputed, event });
      p.refunded = refunded;
    }
    if (p.disputed === 0 && r.next() < 0.15) {
      const event = stripeEvent("charge.dispute.created", {
        id: `dp_${p.pi}`, object: "dispute", amount: p.paid, charge: `ch_${p.pi}`, payment_intent: p.pi, status: "needs_response",
      });
      calls.push({ kind: "clawback", op: op(), pi: p.pi, refunded: p.refunded, disputed: p.paid, event });
      p.disputed = p.paid;
    }
  }
  return calls;
}

/** Starts one call; its answer is kept for the replay to check. */
async function start(meter: Meter, deliver: (e: object) => Promise<unknown>, user: string, c: Call): Promise<[string, unknown]> {
  switch (c.kind) {
    case "track":
      return [c.op, await meter.track(user, "llm.tokens", c.amount, { metadata: { op: c.op } })];
    case "refund":
      return [c.op, await meter.track(user, "llm.tokens.refund", c.amount, { metadata: { op: c.op } })];
    case "grant":
      return [c.op, await meter.grant(user, "tokens", c.amount, { expiresAt: new Date(c.expiresAt), metadata: { op: c.op } })];
    case "buy":
      return [c.op, await deliver(stripeEvent("checkout.session.completed", c.session))];
    case "clawback":
      return [c.op, await deliver(c.event)];
  }
}

/** The user's entries newer than `after`, oldest first. */
async function newEntries(meter: Meter, user: string, after: string | null): Promise<LedgerEntry[]> {
  const all: LedgerEntry[] = [];
  let before: string | undefined;
  for (;;) {
    const page = await meter.entries(user, { limit: 1000, ...(before ? { before } : {}) });
    const fresh = page.filter((e) => after === null || BigInt(e.id) > BigInt(after));
    all.push(...fresh);
    if (page.length < 1000 || fresh.length < page.length) break;
    before = page[page.length - 1]!.id;
  }
  return all.reverse();
}

test(`concurrent packs, refunds, disputes, grants and usage across restarts and month rollovers match the reference model in the ledger's own order (seed ${SEED})`, async () => {
  const r = rng(SEED);
  const users = new Map<string, UserState>(
    USERS.map((u) => [u, { model: new LedgerModel(QUOTA, "record", START), packs: [], lastEntry: null, answers: new Map() }]),
  );
  let calls = 0;
  let clawbacks = 0;
  let debts = 0;
  let collections = 0;
  /** Operations the ledger applied before one started earlier: proof the calls really raced. */
  let overtaken = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const at = START + round * STEP;
    const d = await deploy(at);
    try {
      if (round === 0) for (const u of USERS) await d.meter.upsertSubscription({ userId: u, planId: "lenient", startedAt: new Date(START) });
      const plans = new Map(USERS.map((u) => [u, plan(u, users.get(u)!, round, r)]));
      // Everything at once: every user's calls interleave, and each user's race for its lock.
      const answers = await Promise.all(USERS.flatMap((u) => plans.get(u)!.map((c) => start(d.meter, d.deliver, u, c))));
      const byOp = new Map(answers);
      calls += answers.length;

      for (const u of USERS) {
        const s = users.get(u)!;
        const m = s.model;
        m.now = at;
        const planned = plans.get(u)!;
        const byId = new Map(planned.map((c) => [c.op, c]));
        /** The planned call an entry names, which must be of `kind`. */
        const call = <K extends Call["kind"]>(op: string | null, kind: K): Extract<Call, { kind: K }> => {
          const c = op === null ? undefined : byId.get(op);
          if (c?.kind !== kind) throw new Error(`an entry names ${op}, which is no ${kind} of this round`);
          return c as Extract<Call, { kind: K }>;
        };
        const entries = await newEntries(d.meter, u, s.lastEntry);
        if (entries.length > 0) s.lastEntry = entries[entries.length - 1]!.id;
        const seen = new Set<string>();
        // One user's transactions run one at a time under the lock, so an operation's entries
        // are contiguous among the user's: a head (usage, refund, grant, clawback or debt) and
        // the debts it paid (`settle`). A usage refund writes its settlements first (the credits
        // it gives back pay debts) and its own entry last. How much each operation paid is the
        // model's answer: the settlements must add up to exactly that.
        let i = 0;
        /** Consumes the settlements that follow, adding up to `amount`; returns their sum. */
        const settlements = (amount: number) => {
          let sum = 0;
          while (sum < amount && entries[i]?.kind === "settle") sum += entries[i++]!.amount;
          return sum;
        };
        while (i < entries.length) {
          const head = entries[i]!;
          const opId = typeof head.metadata?.op === "string" ? head.metadata.op : null;
          if (head.kind === "settle") {
            // A usage refund's settlements: its refund entry follows them.
            const owed = m.debt();
            let sum = 0;
            while (entries[i]?.kind === "settle") sum += entries[i++]!.amount;
            const r = entries[i];
            expect(r?.kind, `settlements before entry ${r?.id} belong to no usage refund`).toBe("refund");
            const c = call(typeof r!.metadata?.op === "string" ? r!.metadata.op : null, "refund");
            const back = m.refund(c.amount);
            expect(Math.abs(r!.amount)).toBe(back);
            expect(0 - (byOp.get(c.op) as { amount: number }).amount).toBe(back);
            expect(sum).toBe(owed - m.debt());
            collections++;
            seen.add(c.op);
            i++;
          } else if (head.kind === "track") {
            const c = call(opId, "track");
            expect(head.amount).toBe(c.amount);
            m.track(c.amount);
            seen.add(c.op);
            i++;
          } else if (head.kind === "refund") {
            const c = call(opId, "refund");
            const owed = m.debt();
            const back = m.refund(c.amount);
            expect(Math.abs(head.amount)).toBe(back);
            expect(0 - (byOp.get(c.op) as { amount: number }).amount).toBe(back);
            expect(m.debt()).toBe(owed); // it paid nothing, or its settlements would precede it
            seen.add(c.op);
            i++;
          } else if (head.kind === "grant") {
            i++;
            let paid: number;
            let op: string;
            if (head.metadata?.source === "manual") {
              // A grant's entry names its grant id (the call's metadata stays on the grant).
              const c = call(planned.find((x) => x.kind === "grant" && (byOp.get(x.op) as { grantId: string }).grantId === head.grantId)?.op ?? null, "grant");
              paid = m.grant(head.grantId!, c.amount, c.expiresAt - m.now);
              expect((byOp.get(c.op) as { debtPaid?: number }).debtPaid ?? 0).toBe(paid);
              op = c.op;
            } else {
              const c = call(planned.find((x) => x.kind === "buy" && x.session.id === head.metadata?.sessionId)?.op ?? null, "buy");
              expect(head.amount).toBe(c.credits);
              paid = m.buy(c.pi, c.credits, c.paid);
              op = c.op;
            }
            expect(seen.has(op), `${op} credited twice`).toBe(false);
            expect(settlements(paid)).toBe(paid);
            if (paid > 0) collections++;
            seen.add(op);
          } else if (head.kind === "clawback" || head.kind === "debt") {
            i++;
            const pi = String(head.metadata?.paymentIntent);
            let written = head.kind === "debt" ? head.amount : 0;
            // The debt a clawback leaves follows its clawback entry.
            if (head.kind === "clawback" && entries[i]?.kind === "debt" && entries[i]!.metadata?.paymentIntent === pi) written = entries[i++]!.amount;
            const p = m.packs.get(pi)!;
            const target = p.clawed + head.amount + (head.kind === "clawback" ? written : 0);
            // The event whose cumulative refund + dispute gives this target (the events of one
            // pack in one round have distinct targets).
            const c = call(
              planned.find((x) => x.kind === "clawback" && x.pi === pi && Math.min(p.credits, Math.ceil((p.credits * Math.min(p.paid, x.refunded + x.disputed)) / p.paid)) === target)?.op ?? null,
              "clawback",
            );
            const owed = m.debt();
            const debt = m.clawback(pi, c.refunded, c.disputed);
            expect(written).toBe(debt);
            const paid = owed + debt - m.debt();
            expect(settlements(paid)).toBe(paid);
            clawbacks++;
            if (debt > 0) debts++;
            if (paid > 0) collections++;
            seen.add(c.op);
          } else {
            throw new Error(`unexpected entry ${head.kind} ${head.id}`);
          }
        }
        const order = planned.filter((c) => seen.has(c.op)).map((c) => c.op);
        const applied = [...seen];
        overtaken += applied.filter((op, i) => order.indexOf(op) !== i).length;
        // Every usage, refund that gave something back, grant and purchase wrote exactly once.
        for (const c of planned) {
          if (c.kind === "track" || c.kind === "grant" || c.kind === "buy") expect(seen.has(c.op), `${c.kind} ${c.op} left no entry`).toBe(true);
          if (c.kind === "refund" && (byOp.get(c.op) as { amount: number }).amount !== 0) expect(seen.has(c.op)).toBe(true);
        }
        // The other events of a pack in this round changed nothing: its clawed total is the model's.
        for (const c of planned) if (c.kind === "clawback") expect(m.packs.get(c.pi)!.clawed).toBeLessThanOrEqual(m.packs.get(c.pi)!.credits);
        for (const c of planned) if (c.kind === "buy") s.packs.push({ pi: c.pi, credits: c.credits, paid: c.paid, refunded: 0, disputed: 0 });

        const got = (await d.meter.usage(u)).counters.find((x) => x.key === "tokens")!;
        expect({ used: got.used, held: got.held, granted: got.granted, remaining: got.remaining, periodStart: got.periodStart, debt: got.debt ?? 0 }).toEqual({
          used: m.usage().used, held: m.usage().held, granted: m.usage().granted, remaining: m.usage().remaining, periodStart: m.usage().periodStart, debt: m.debt(),
        });
        expect(await d.meter.audit(u)).toEqual([]);
      }
    } finally {
      await d.meter.close();
      await d.pool.end();
    }
  }
  recordFigures("money rules under concurrency and restarts", { operations: calls, violations: 0, rounds: ROUNDS, clawbacks, debts, debtCollections: collections, overtaken });
  // The run really exercised what it claims.
  expect(overtaken).toBeGreaterThan(0);
  expect(clawbacks).toBeGreaterThan(5);
  expect(debts).toBeGreaterThan(0);
  expect(collections).toBeGreaterThan(0);
}, 120_000);
