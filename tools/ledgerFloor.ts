/**
 * `npx tsx tools/ledgerFloor.ts`: how fast the unbatched ledger could be on this machine if it
 * kept only the writes the record-format change of docs/benchmarks.md ("What is left") would
 * keep — measured, against the bare conditional UPDATE and today's meter, in the same run.
 *
 * The floor is a minimal ledger in the proposed format, nothing more: the check's inputs on the
 * balance row (quota copy, used, held, open holds, earliest open expiry), so a reserve is one
 * conditional UPDATE of that row (HOT) plus its entry, which is the hold; a commit reads that
 * entry, appends its resolution (a unique index on (user, hold) makes it resolve once) and
 * updates the row. One PL/pgSQL frame per operation, prepared statements, fsync on. It leaves
 * out what the real ledger does besides: no plan or period lookup (the row is made up front),
 * no advisory lock (the row lock serialises), no idempotency, no grants, no expiry sweep, no
 * NOTIFY, no 24-hour key rules. So it bounds the change from above: if the floor cannot reach
 * a goal of issue 16 here, no record format will.
 *
 * A second floor, *one append*, drops even the resolution and expiry indexes and the stored
 * result: each operation is the row UPDATE plus one entry with its primary key — the least any
 * ledger with an append-only entry per operation can write.
 *
 * Cells: `FLOOR_CLIENTS` (default 8,32,64), `FLOOR_MODES` (spread,hot), `FLOOR_SECONDS` (2),
 * `FLOOR_REPS` (3), each repetition running meterkit, the two floors and the bare UPDATE in
 * turn (every user's meterkit rows made first). Prints the median pairs/s of each, their
 * ratios to the bare UPDATE, and their reserve p99 over the repetitions against the bare UPDATE's.
 */
import pg from "pg";
import { createMeter } from "../src/server/index.js";
import { baselinePair, benchDatabase, benchUser, loadFor, meterPair, percentile, setupBaseline, table } from "../bench/util.js";

const USERS = 10_000;
const SECONDS = Number(process.env.FLOOR_SECONDS ?? 2);
const REPS = Number(process.env.FLOOR_REPS ?? 3);
const CLIENTS = (process.env.FLOOR_CLIENTS ?? "8,32,64").split(",").map(Number);
const MODES = (process.env.FLOOR_MODES ?? "spread,hot").split(",") as Array<"spread" | "hot">;

/** The floor's schema; `bare` leaves out the resolution and expiry indexes and the stored result: one append per operation, nothing else. */
const floorSql = (schema: string, bare: boolean) => `
DROP SCHEMA IF EXISTS ${schema} CASCADE;
CREATE SCHEMA ${schema};
SET search_path = ${schema};
CREATE TABLE balances (
  user_id text NOT NULL, counter_key text NOT NULL, period_start timestamptz NOT NULL,
  quota bigint, used bigint NOT NULL DEFAULT 0, held bigint NOT NULL DEFAULT 0,
  open_count int NOT NULL DEFAULT 0, next_expiry timestamptz NOT NULL DEFAULT 'infinity',
  PRIMARY KEY (user_id, counter_key, period_start)
) WITH (fillfactor = 80);
CREATE SEQUENCE entry_ids;
CREATE TABLE entries (
  user_id text NOT NULL, id bigint NOT NULL DEFAULT nextval('entry_ids'), counter_key text NOT NULL,
  kind text NOT NULL, amount bigint NOT NULL, hold_id bigint, expires_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(), result json,
  PRIMARY KEY (user_id, id)
);
${bare ? "" : `-- "Resolves once": one resolution entry per hold.
CREATE UNIQUE INDEX entries_resolution ON entries (user_id, hold_id) WHERE hold_id IS NOT NULL;
-- Expiry finds run-out holds by an insert-only index.
CREATE INDEX entries_expiry ON entries (user_id, counter_key, expires_at) WHERE kind = 'reserve';`}

CREATE FUNCTION reserve(p_user text, p_counter text, p_amount bigint, p_ttl_ms bigint) RETURNS json
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  now_ timestamptz := now();
  exp timestamptz := now_ + p_ttl_ms * interval '1 millisecond';
  ps timestamptz := date_trunc('month', now_ AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
  rem bigint;
  hid bigint;
BEGIN
  UPDATE balances SET held = held + p_amount, open_count = open_count + 1, next_expiry = least(next_expiry, exp)
  WHERE user_id = p_user AND counter_key = p_counter AND period_start = ps
    AND next_expiry > now_ AND quota - used - held >= p_amount
  RETURNING quota - used - held INTO rem;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'floor: denied or due (not benchmarked)';
  END IF;
  INSERT INTO entries (user_id, counter_key, kind, amount, expires_at)
  VALUES (p_user, p_counter, 'reserve', p_amount, exp) RETURNING id INTO hid;
  RETURN json_build_object('allowed', true, 'reservationId', hid::text || '_' || p_user, 'remaining', rem,
    'expiresAt', to_char(exp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'amount', p_amount, 'counter', p_counter);
END $$;

CREATE FUNCTION commit(p_user text, p_hold bigint, p_actual bigint) RETURNS json
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  now_ timestamptz := now();
  ps timestamptz := date_trunc('month', now_ AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
  h entries;
  rem bigint;
  res json;
BEGIN
  SELECT * INTO h FROM entries WHERE user_id = p_user AND id = p_hold AND kind = 'reserve';
  IF NOT FOUND OR h.expires_at <= now_ THEN
    RAISE EXCEPTION 'floor: unknown or expired hold (not benchmarked)';
  END IF;
  UPDATE balances SET held = held - h.amount, used = used + p_actual, open_count = open_count - 1
  WHERE user_id = p_user AND counter_key = h.counter_key AND period_start = ps
  RETURNING quota - used - held INTO rem;
  res := json_build_object('reservationId', p_hold::text || '_' || p_user, 'userId', p_user, 'status', 'committed',
    'held', h.amount, 'committed', p_actual, 'refunded', greatest(h.amount - p_actual, 0), 'overage', greatest(p_actual - h.amount, 0),
    'remaining', rem);
  -- The resolution entry carries the result a repeat answers (a unique violation = resolved already).
  INSERT INTO entries (user_id, counter_key, kind, amount, hold_id, result)
  VALUES (p_user, h.counter_key, 'commit', p_actual, p_hold, ${bare ? "NULL" : "res"});
  RETURN res;
END $$;

INSERT INTO balances (user_id, counter_key, period_start, quota)
SELECT 'u' || i, 'tokens', date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', 1000000000000000
FROM generate_series(0, ${USERS - 1}) i;
RESET search_path;
`;

/**
 * One reserve (1000) + commit (400) pair on the floor in `schema`; returns the reserve's latency
 * in ms. Its holds live a day, so none runs out during a run: the floor never takes the expiry
 * path (which the real ledger too takes only when a hold has run out).
 */
async function floorPair(pool: pg.Pool, schema: string, user: string): Promise<number> {
  const t0 = performance.now();
  const { rows } = await pool.query<{ r: { allowed: boolean; reservationId: string } }>({
    name: `${schema}_reserve`, text: `SELECT ${schema}.reserve($1, $2, $3, $4) AS r`, values: [user, "tokens", 1000, 86_400_000],
  });
  const lat = performance.now() - t0;
  const id = Number(rows[0]!.r.reservationId.split("_")[0]);
  await pool.query({ name: `${schema}_commit`, text: `SELECT ${schema}.commit($1, $2, $3) AS r`, values: [user, id, 400] });
  return lat;
}

type Run = Awaited<ReturnType<typeof loadFor>>;
const p99 = (runs: Run[]) => percentile(runs.flatMap((r) => r.latencies), 99);
const median = (runs: Run[]) => runs.map((x) => x.ops / x.seconds).sort((a, b) => a - b)[Math.floor(runs.length / 2)]!;

const db = await benchDatabase();
try {
  const meter = createMeter({
    database: db.url,
    plans: { bench: { limits: { tokens: { quota: 1e15, period: "none" } } } },
    schema: "bench_floor_meter",
    poolSize: 64,
    sweepInterval: 0,
  });
  await meter.migrate();
  const pool = new pg.Pool({ connectionString: db.url, max: 64 });
  pool.on("error", () => {}); // idle clients told to end when the server stops
  await pool.query(`INSERT INTO bench_floor_meter.subscriptions (user_id, plan_id, started_at)
                    SELECT 'u' || i, 'bench', now() FROM generate_series(0, ${USERS - 1}) i ON CONFLICT DO NOTHING`);
  await setupBaseline(pool, USERS);
  await pool.query(floorSql("ledger_floor", false));
  await pool.query(floorSql("ledger_floor_bare", true));
  // Every user's first call makes its meterkit rows (balance, period): made here, not in the first cell.
  for (let i = 0; i < USERS; i += 64) {
    await Promise.all(Array.from({ length: Math.min(64, USERS - i) }, async (_, k) => {
      const r = await meter.reserve(`u${i + k}`, "tokens", 1000);
      if (r.allowed) await meter.commit(r.reservationId, { actual: 400 });
    }));
  }

  const load = (await import("node:os")).loadavg()[0]!.toFixed(2);
  console.log(`ledger floor, ${new Date().toISOString()}, load average ${load}, ${SECONDS} s cells, ${REPS} repetitions`);
  const rows: Array<Record<string, string | number>> = [];
  for (const mode of MODES) {
    for (const clients of CLIENTS) {
      const user = (w: number, i: number) => benchUser(mode, USERS, w, i);
      const runs = { meter: [] as Run[], floor: [] as Run[], bare: [] as Run[], base: [] as Run[] };
      for (let rep = 0; rep < REPS; rep++) {
        runs.meter.push(await loadFor(clients, SECONDS * 1000, (w, i) => meterPair(meter, user(w, i))));
        runs.floor.push(await loadFor(clients, SECONDS * 1000, (w, i) => floorPair(pool, "ledger_floor", user(w, i))));
        runs.bare.push(await loadFor(clients, SECONDS * 1000, (w, i) => floorPair(pool, "ledger_floor_bare", user(w, i))));
        runs.base.push(await loadFor(clients, SECONDS * 1000, (w, i) => baselinePair(pool, user(w, i))));
      }
      const [m, f, a, b] = [median(runs.meter), median(runs.floor), median(runs.bare), median(runs.base)];
      rows.push({
        mode, clients,
        "meterkit pairs/s": Math.round(m), "floor pairs/s": Math.round(f), "one append pairs/s": Math.round(a), "bare UPDATE pairs/s": Math.round(b),
        "meterkit ÷ bare UPDATE": (m / b).toFixed(2), "floor ÷ bare UPDATE": (f / b).toFixed(2), "one append ÷ bare UPDATE": (a / b).toFixed(2),
        "reserve p99 ÷ bare UPDATE's: meterkit / floor / one append": [runs.meter, runs.floor, runs.bare].map((r) => (p99(r) / p99(runs.base)).toFixed(2)).join(" / "),
      });
    }
  }
  table(`Ledger floor: reserve+commit pairs, fsync on, median of ${REPS} × ${SECONDS} s (load average ${load} at start)`, rows);
  console.log(`load average at the end: ${(await import("node:os")).loadavg()[0]!.toFixed(2)}`);
  await pool.end();
  await meter.close();
} finally {
  await db.stop();
}
