import pg from "pg";
import { createHash } from "node:crypto";
import { Socket } from "node:net";
import { MeterError, isErrorCode, type ErrorDetails } from "../core/errors.js";
import { resolveTimeouts, type ResolvedTimeouts } from "./timeouts.js";

/** Where the ledger lives: a connection string, or a `pg.Pool` the app already has. */
export type DatabaseOption = string | pg.Pool;

/** The pool a meter uses, and how much of it meterkit controls. */
export interface MeterPool {
  pool: pg.Pool;
  /** True when meterkit created the pool (from a connection string) and so closes it. */
  owned: boolean;
  /**
   * Destroys every socket of the pool that is still open (an owned pool only): what `close()`
   * does past its bound, when a black-holed network would leave a graceful goodbye unanswered.
   */
  destroySockets(): number;
  /** Resolves once every socket of an owned pool is closed, or after `ms`. */
  socketsClosed(ms: number): Promise<boolean>;
}

/** The bounds each pool's calls get (see {@link query}); a pool the app passed is bounded per call. */
const BOUNDS = new WeakMap<pg.Pool, ResolvedTimeouts>();

/** The bounds of a meter's pool (defaults for a pool no meter registered). */
export function boundsOf(pool: pg.Pool): ResolvedTimeouts {
  return BOUNDS.get(pool) ?? resolveTimeouts(undefined);
}

export function createPool(database: DatabaseOption, max: number, timeouts: ResolvedTimeouts): MeterPool {
  if (typeof database === "string") {
    const sockets = new Set<Socket>();
    const pool = new pg.Pool({
      connectionString: database,
      max,
      // Every bound is set on the connection itself, so it also holds for the pool's own work
      // (pool.query, the LISTEN connection that copies these options). Not `statement_timeout`:
      // it travels as a startup parameter, which PgBouncer refuses ("unsupported startup
      // parameter"); the client-side bound below needs no server cooperation.
      connectionTimeoutMillis: timeouts.connect,
      query_timeout: timeouts.statement,
      keepAlive: true,
      keepAliveInitialDelayMillis: timeouts.keepAlive,
      // Our own sockets, so that close() can destroy them when the network swallows the goodbye.
      stream: () => {
        const socket = new Socket();
        sockets.add(socket);
        socket.once("close", () => sockets.delete(socket));
        return socket;
      },
    });
    // An idle client that loses its connection (database restart) must not crash the process.
    pool.on("error", () => {});
    BOUNDS.set(pool, timeouts);
    return {
      pool,
      owned: true,
      destroySockets() {
        const n = sockets.size;
        for (const s of sockets) s.destroy();
        return n;
      },
      async socketsClosed(ms) {
        const deadline = Date.now() + ms;
        while (sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        return sockets.size === 0;
      },
    };
  }
  if (database && typeof (database as pg.Pool).query === "function") {
    // The app's pool keeps its own connect timeout, keepalive and session settings (meterkit
    // must not change the session of connections the app also uses); each call of ours is
    // still bounded in query() below.
    BOUNDS.set(database, timeouts);
    return { pool: database, owned: false, destroySockets: () => 0, socketsClosed: async () => true };
  }
  throw new MeterError("invalid_request", "createMeter: `database` must be a connection string or a pg.Pool.", { field: "database" });
}

// SQLSTATE classes that mean "the database is not there right now": connection exceptions,
// operator intervention (shutdown, crash recovery, a statement cancelled by statement_timeout),
// insufficient resources, and lock timeouts.
const UNAVAILABLE_STATES = /^(08|57P|57014|53|55P03|40001|40P01)/;
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
  if (code === "23505" && /^idempotency(_|$)/.test((err as { constraint?: string }).constraint ?? "")) {
    // The key is per user, the locks per (user, counter): two calls with one key on two counters
    // meet only here, and the second (whose transaction this rolled back) used other arguments —
    // the same arguments name the same counters, whose lock makes the second a replay instead.
    return new MeterError("conflict", "Idempotency key was already used with different arguments, by a call at the same moment.", {}, { cause: err });
  }
  if (
    UNAVAILABLE_STATES.test(code) ||
    NETWORK_CODES.has(code) ||
    /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|the database system is|Query read timeout|Cannot use a pool after calling end/i.test(message)
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

/** Statement text → its name (see {@link statementName}). */
const NAMES = new Map<string, string>();

/**
 * The name under which `text` is prepared on each connection (see {@link query}): derived
 * from the text, so every meter and process names a statement alike.
 */
export function statementName(text: string): string {
  let name = NAMES.get(text);
  if (name === undefined) {
    name = "meterkit_" + createHash("sha1").update(text).digest("hex").slice(0, 20);
    NAMES.set(text, name);
  }
  return name;
}

/**
 * Pools whose named statements failed: behind a pooler in transaction mode that does not track
 * them (PgBouncer before 1.21, or without `max_prepared_statements`), a statement prepared on
 * one server connection is missing on the next.
 */
const UNNAMED = new WeakSet<pg.Pool>();
/** "prepared statement does not exist" / "already exists": answered before anything runs. */
const LOST_STATEMENT = new Set(["26000", "42P05"]);

/**
 * Runs one statement on a pooled connection. Unlike `pool.query`, a statement that fails for
 * a ledger rule (conflict, not_found, limit_reached…) gives its connection back for reuse;
 * only a broken connection is discarded. Errors come back as MeterErrors. Both steps are
 * bounded (the pool's timeouts, see {@link boundsOf}), also on a pool the app passed in:
 * waiting for a connection past `connect`, or for an answer past `statement`, is
 * `unavailable`, and a connection that timed out is discarded, never reused. With `name`, the
 * statement is prepared once per connection and then only bound and run (no parse and plan per
 * call); a pool where that fails (see {@link UNNAMED}) retries once unnamed and stays unnamed.
 */
export async function query<R extends pg.QueryResultRow>(pool: pg.Pool, text: string, values: unknown[], name?: string): Promise<pg.QueryResult<R>> {
  const bounds = boundsOf(pool);
  const named = name !== undefined && !UNNAMED.has(pool);
  let client: pg.PoolClient;
  try {
    client = await connectWithin(pool, bounds.connect);
  } catch (err) {
    throw toMeterError(err);
  }
  // pg emits a dropped socket as an 'error' event on the checked-out client as well as failing
  // the query; with no listener that event would crash the process. The query's own error
  // (below) is what the caller gets.
  client.on("error", ignoreSocketError);
  // pg reads `query_timeout` per query too (its types only list it on the client config).
  const bounded: pg.QueryConfig & { query_timeout: number } = { text, values, query_timeout: bounds.statement, ...(named ? { name } : {}) };
  try {
    const result = await client.query<R>(bounded);
    client.removeListener("error", ignoreSocketError);
    client.release();
    return result;
  } catch (err) {
    client.removeListener("error", ignoreSocketError);
    if (named && LOST_STATEMENT.has((err as { code?: unknown } | null)?.code as string)) {
      // A pooler that moves a session's statements between server connections: nothing ran.
      // This connection's record of what it prepared is wrong now, so it goes; this pool
      // sends unnamed statements from now on.
      UNNAMED.add(pool);
      client.release(err as Error);
      return query<R>(pool, text, values);
    }
    const mapped = toMeterError(err);
    client.release(mapped.code === "unavailable" || mapped.code === "internal" ? (err as Error) : undefined);
    throw mapped;
  }
}

/**
 * `pool.connect()` with a deadline. A pool meterkit created enforces it itself
 * (`connectionTimeoutMillis`); an app's pool may wait forever, so the wait is cut here and a
 * connection that arrives late goes straight back to the pool.
 */
function connectWithin(pool: pg.Pool, ms: number): Promise<pg.PoolClient> {
  const connecting = pool.connect();
  return new Promise((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(new MeterError("unavailable", "The ledger database is unavailable; retry shortly.", { reason: "connect_timeout" }));
    }, ms);
    timer.unref();
    connecting.then(
      (client) => {
        clearTimeout(timer);
        if (late) client.release();
        else resolve(client);
      },
      (err: unknown) => {
        clearTimeout(timer);
        if (!late) reject(err);
      },
    );
  });
}

function ignoreSocketError(): void {}
