import pg from "pg";
import { MeterError, isErrorCode, type ErrorDetails } from "../core/errors.js";

/** Where the ledger lives: a connection string, or a `pg.Pool` the app already has. */
export type DatabaseOption = string | pg.Pool;

export function createPool(database: DatabaseOption, max: number): { pool: pg.Pool; owned: boolean } {
  if (typeof database === "string") {
    const pool = new pg.Pool({ connectionString: database, max });
    // An idle client that loses its connection (database restart) must not crash the process.
    pool.on("error", () => {});
    return { pool, owned: true };
  }
  if (database && typeof (database as pg.Pool).query === "function") return { pool: database, owned: false };
  throw new MeterError("invalid_request", "createMeter: `database` must be a connection string or a pg.Pool.", { field: "database" });
}

// SQLSTATE classes that mean "the database is not there right now": connection exceptions,
// operator intervention (shutdown, crash recovery), insufficient resources, and lock timeouts.
const UNAVAILABLE_STATES = /^(08|57P|53|55P03|40001|40P01)/;
const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "ENOTFOUND", "EHOSTUNREACH", "EAI_AGAIN"]);

/** Maps anything a query throws to a MeterError: ledger rule violations keep their code. */
export function toMeterError(err: unknown): MeterError {
  if (err instanceof MeterError) return err;
  const e = err as { code?: string; detail?: string; hint?: string; message?: string } | null;
  if (e && typeof e.detail === "string" && e.detail.startsWith("meterkit:")) {
    const code = e.detail.slice("meterkit:".length);
    let details: ErrorDetails = {};
    try {
      details = e.hint ? (JSON.parse(e.hint) as ErrorDetails) : {};
    } catch {
      details = {};
    }
    if (isErrorCode(code)) return new MeterError(code, e.message ?? code, details);
  }
  const code = e?.code ?? "";
  const message = e?.message ?? "";
  if (
    UNAVAILABLE_STATES.test(code) ||
    NETWORK_CODES.has(code) ||
    /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|the database system is/i.test(message)
  ) {
    return new MeterError("unavailable", "The ledger database is unavailable; retry shortly.", {}, { cause: err });
  }
  if (code === "42883" || code === "3F000" || code === "42P01") {
    return new MeterError("internal", "The meterkit schema is missing or out of date: run `await meter.migrate()` first.", {}, { cause: err });
  }
  return new MeterError("internal", "Unexpected ledger error.", {}, { cause: err });
}

/** Quotes an identifier for SQL. */
export function ident(name: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) {
    throw new MeterError("invalid_request", `schema must be a lower-case SQL identifier, got ${JSON.stringify(name)}.`, { field: "schema" });
  }
  return `"${name}"`;
}

/**
 * Runs one statement on a pooled connection. Unlike `pool.query`, a statement that fails for
 * a ledger rule (conflict, not_found, limit_reached…) gives its connection back for reuse;
 * only a broken connection is discarded. Errors come back as MeterErrors.
 */
export async function query<R extends pg.QueryResultRow>(pool: pg.Pool, text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw toMeterError(err);
  }
  // pg emits a dropped socket as an 'error' event on the checked-out client as well as failing
  // the query; with no listener that event would crash the process. The query's own error
  // (below) is what the caller gets.
  client.on("error", ignoreSocketError);
  try {
    const result = await client.query<R>(text, values);
    client.removeListener("error", ignoreSocketError);
    client.release();
    return result;
  } catch (err) {
    client.removeListener("error", ignoreSocketError);
    const mapped = toMeterError(err);
    client.release(mapped.code === "unavailable" || mapped.code === "internal" ? (err as Error) : undefined);
    throw mapped;
  }
}

function ignoreSocketError(): void {}
