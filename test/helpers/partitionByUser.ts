import pg from "pg";

/*
 * Turns a migrated meter's per-user tables into tables hash-partitioned by user_id, the layout
 * Citus gives a table distributed by user id (docs/scale.md). It reads the catalog rather than
 * naming tables, columns or indexes, so a later migration that adds any of them is converted
 * too: every table of the schema with a `user_id` column becomes partitioned unless
 * GLOBAL_TABLES lists it, keeping every column (defaults, identity, NOT NULL), CHECK
 * constraint, index, key, foreign key, trigger, sequence ownership and row.
 *
 * The one change Postgres forces: a unique index or key of a partitioned table must contain
 * the partition key, so a key without user_id gets it in front (`holds_pkey (id)` becomes
 * `(user_id, id)`). The ids involved are generated (random UUIDs, the entries sequence), so
 * they stay unique anyway; what is lost is the index that finds a row by id alone — which is
 * exactly what a sharded layout cannot offer cheaply either (docs/scale.md).
 */

/**
 * Tables with a user_id column that stay plain (Citus: reference or coordinator tables), and why.
 * Everything else with a user_id is partitioned.
 */
export const GLOBAL_TABLES: Record<string, string> = {
  stripe_customers: "maps a Stripe customer id to its user: a webhook arrives knowing only the customer (unique customer_id)",
  stripe_payments: "maps a payment intent to its user: a refund or dispute arrives knowing only the payment intent",
  stripe_meter_outbox: "an outbox drained across all users by syncStripeMeters (claim by due time; unique identifier)",
  alert_outbox: "an outbox drained across all users by the alerts worker (claim by due time; ON CONFLICT (id) on a deterministic event id)",
  auto_top_up_charges: "an outbox drained across all users by the auto top-up worker (claim by due time)",
};

/** How many hash partitions each table gets. */
export const PARTITIONS = 8;

/** The tables `partitionByUser` converts in `schema` (those not converted yet included). */
export async function perUserTables(client: pg.ClientBase, schema: string): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'user_id' AND NOT a.attisdropped
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1`,
    [schema],
  );
  return rows.map((r) => r.name).filter((n) => !Object.hasOwn(GLOBAL_TABLES, n));
}

const q = (id: string) => '"' + id.replace(/"/g, '""') + '"';

/**
 * Converts every per-user table of `schema` (idempotent: tables already partitioned are left
 * alone) and returns their names. Runs in one transaction, on a connection of its own (from
 * `database`, a connection string or a pool).
 */
export async function partitionByUser(database: string | pg.Pool, schema: string, partitions = PARTITIONS): Promise<string[]> {
  const own = typeof database === "string" ? new pg.Client({ connectionString: database }) : null;
  if (own) await own.connect();
  const client = own ?? (await (database as pg.Pool).connect());
  const converted: string[] = [];
  try {
    await client.query("BEGIN");
    // The same lock migrate() takes: a converter racing a migrator (or another converter) waits.
    await client.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 42))", ["meterkit.migrate:" + schema]);
    for (const table of await perUserTables(client, schema)) {
      const { rows: kind } = await client.query<{ relkind: string }>(
        "SELECT relkind FROM pg_class WHERE oid = $1::regclass",
        [`${q(schema)}.${q(table)}`],
      );
      if (kind[0]!.relkind === "p") continue;
      await convert(client, schema, table, partitions);
      converted.push(table);
    }
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    if (own) await own.end();
    else (client as pg.PoolClient).release();
  }
  return converted;
}

async function convert(client: pg.ClientBase, schema: string, table: string, partitions: number): Promise<void> {
  const full = `${q(schema)}.${q(table)}`;
  const old = `${q(schema)}.${q(table + "__plain")}`;
  // 1. What to rebuild, read before the table goes: keys and foreign keys (CHECKs and NOT NULL
  //    come with LIKE), the other indexes, triggers, foreign keys of other tables pointing here,
  //    and sequences owned by its columns.
  const { rows: cons } = await client.query<{ name: string; type: string; def: string; hasUser: boolean }>(
    `SELECT conname AS name, contype AS type, pg_get_constraintdef(oid) AS def,
            EXISTS (SELECT 1 FROM unnest(conkey) k JOIN pg_attribute a ON a.attrelid = conrelid AND a.attnum = k WHERE a.attname = 'user_id') AS "hasUser"
     FROM pg_constraint WHERE conrelid = $1::regclass AND contype IN ('p', 'u', 'f', 'x') ORDER BY contype DESC, conname`,
    [full],
  );
  const { rows: idx } = await client.query<{ def: string; unique: boolean; hasUser: boolean }>(
    `SELECT pg_get_indexdef(i.indexrelid) AS def, i.indisunique AS unique,
            EXISTS (SELECT 1 FROM unnest(i.indkey::int2[]) k JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k WHERE a.attname = 'user_id') AS "hasUser"
     FROM pg_index i WHERE i.indrelid = $1::regclass
       AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)`,
    [full],
  );
  const { rows: triggers } = await client.query<{ def: string }>(
    "SELECT pg_get_triggerdef(oid) AS def FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal",
    [full],
  );
  const { rows: inbound } = await client.query<{ rel: string; name: string; def: string }>(
    "SELECT conrelid::regclass::text AS rel, conname AS name, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE confrelid = $1::regclass AND contype = 'f'",
    [full],
  );
  const { rows: owned } = await client.query<{ seq: string; col: string }>(
    `SELECT d.objid::regclass::text AS seq, a.attname AS col FROM pg_depend d
     JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
     WHERE d.refobjid = $1::regclass AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
       AND (SELECT relkind FROM pg_class WHERE oid = d.objid) = 'S'`,
    [full],
  );

  // 2. The partitioned twin, same columns, then the rows, then the old table goes (freeing
  //    the names of its indexes and constraints for the twin).
  for (const f of inbound) await client.query(`ALTER TABLE ${f.rel} DROP CONSTRAINT ${q(f.name)}`);
  for (const s of owned) await client.query(`ALTER SEQUENCE ${s.seq} OWNED BY NONE`);
  await client.query(`ALTER TABLE ${full} RENAME TO ${q(table + "__plain")}`);
  await client.query(
    `CREATE TABLE ${full} (LIKE ${old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED INCLUDING IDENTITY INCLUDING COMMENTS INCLUDING STORAGE)
     PARTITION BY HASH (user_id)`,
  );
  for (let i = 0; i < partitions; i++) {
    await client.query(
      `CREATE TABLE ${q(schema)}.${q(`${table}_p${i}`)} PARTITION OF ${full} FOR VALUES WITH (MODULUS ${partitions}, REMAINDER ${i})`,
    );
  }
  await client.query(`INSERT INTO ${full} SELECT * FROM ${old}`);
  await client.query(`DROP TABLE ${old}`);

  // 3. Keys (user_id in front when missing), indexes, foreign keys, triggers, ownership.
  for (const c of cons) {
    let def = c.def;
    if ((c.type === "p" || c.type === "u") && !c.hasUser) def = def.replace(/^(PRIMARY KEY|UNIQUE) \(/, "$1 (user_id, ");
    await client.query(`ALTER TABLE ${full} ADD CONSTRAINT ${q(c.name)} ${def}`);
  }
  for (const i of idx) {
    let def = i.def;
    if (i.unique && !i.hasUser) def = def.replace(/ USING (\w+) \(/, " USING $1 (user_id, ");
    await client.query(def);
  }
  for (const t of triggers) await client.query(t.def);
  for (const s of owned) await client.query(`ALTER SEQUENCE ${s.seq} OWNED BY ${full}.${q(s.col)}`);
  for (const f of inbound) await client.query(`ALTER TABLE ${f.rel} ADD CONSTRAINT ${q(f.name)} ${f.def}`);
}
