import type pg from "pg";
import { MeterError } from "../core/errors.js";
import type {
  AdjustOptions,
  AdjustResult,
  CommitOptions,
  CommitResult,
  GrantOptions,
  GrantResult,
  MeterApi,
  MeterDefinition,
  PlanDefinition,
  PriceTable,
  ReleaseResult,
  ReserveOptions,
  ReserveResult,
  MultiReserveResult,
  Subscription,
  SubscriptionInput,
  TrackOptions,
  TrackResult,
  Usage,
} from "../core/types.js";
import type { BillingHooks } from "./billing.js";
import { resolveConfig, type ResolvedConfig } from "./config.js";
import { createPool, ident, query, toMeterError, type DatabaseOption } from "./db.js";
import { channelOf, checkSchemaName } from "./schemaName.js";
import { resolveTimeouts, settlesWithin, type ResolvedTimeouts, type TimeoutOptions } from "./timeouts.js";
import { audit, type AuditDifference } from "./ledger/audit.js";
import { entries, usageByDay, type DailyUsage, type EntriesOptions, type LedgerEntry, type UsageByDayOptions } from "./ledger/history.js";
import type { LedgerContext } from "./ledger/context.js";
import { eraseUser } from "./ledger/eraseUser.js";
import { reservation, type Reservation } from "./ledger/reservation.js";
import { ledgerWrites } from "./ledger/ledgerWrites.js";
import { sweepExpired, usage } from "./ledger/subscription.js";
import { attachInternals } from "./internals.js";
import { migrate } from "./migrate.js";
import { createNotifier, type Notifier } from "./notifier.js";
import { browserTokenSecrets, signBrowserToken, type BrowserTokenOptions } from "./http/browserToken.js";
import { ttlMs } from "./validate.js";
import type { StripeOptions } from "./stripe/config.js";
import { createStripeBilling } from "./stripe/createStripeBilling.js";
import { stripeNotConfigured, type SyncStripeMetersOptions, type SyncStripeMetersResult } from "./stripe/syncStripeMeters.js";
import { createCreditLifecycle } from "./autoTopUp/createCreditLifecycle.js";
import type { AutoTopUpApi, AutoTopUpOptions } from "./autoTopUp/types.js";
import type { AlertsApi, AlertsOptions } from "./alerts/types.js";
import { createBatcher, resolveBatchOptions, type BatchOptions } from "./ledger/batcher.js";

export interface CreateMeterOptions {
  /** A PostgreSQL connection string, or a `pg.Pool` the app already has (then `close()` leaves it open). */
  database: DatabaseOption;
  /** Plans and their limit groups, by plan id. */
  plans: Record<string, PlanDefinition>;
  /**
   * Event keys → counters (`{ "llm.tokens": { counter: "tokens" } }`). Every counter key can
   * also be used as a meter key directly. `<key>.refund` gives back on `<key>`'s counter.
   */
  meters?: Record<string, MeterDefinition>;
  /** Model prices for `cents` counters (major currency units per million tokens). Default: none. */
  prices?: PriceTable;
  /** Plan for users with no subscription yet. Default: none (unknown users are `not_found`). */
  defaultPlan?: string;
  /** How long a hold lives before it expires, in ms. Default 600 000 (10 minutes). */
  holdTtl?: number;
  /**
   * Postgres schema of the ledger's tables: a lower-case SQL identifier of at most 54
   * characters (its NOTIFY channel `meterkit:<schema>` must fit 63 bytes). Default `"meterkit"`.
   */
  schema?: string;
  /** Connections in the pool this meter creates from a connection string. Default 10. */
  poolSize?: number;
  /** How often expired holds get their expiry entries written, in ms; 0 turns the sweeper off. Default 30 000. */
  sweepInterval?: number;
  /**
   * Signs the tokens of `meter.browserToken()` (HMAC-SHA256), at least 32 characters. A list
   * rotates: the first signs, every one verifies. Default: none (`browserToken()` throws).
   */
  browserTokenSecret?: string | string[];
  /**
   * Stripe: credit packs through Checkout, the exactly-once webhook, post-paid meter sync
   * (see docs/stripe.md). Checked here, so a misconfiguration fails at start-up. Default: none
   * (the billing routes answer `not_found`).
   */
  stripe?: StripeOptions;
  /**
   * Time bounds on every database call, in ms: `connect` (default 5 000), `statement`
   * (default 10 000), `close` (default 5 000), `keepAlive` (default 10 000). Past a bound a call
   * answers `unavailable` (HTTP 503) instead of hanging on a network that stopped answering.
   * With an app's own `pg.Pool`, `connect` and `statement` bound each of meterkit's calls but
   * the pool's connections keep the app's settings (see docs/server.md, "Timeouts").
   */
  timeouts?: TimeoutOptions;
  /**
   * Auto top-up (opt-in per user and counter through `meter.autoTopUp.set`): the worker's
   * timer, lease and timeouts (see docs/auto-top-up.md). Needs `stripe`. Default: none (the
   * after-commit observation is off and `meter.autoTopUp` throws `not_found`).
   */
  autoTopUp?: AutoTopUpOptions;
  /**
   * Balance alerts (thresholds per counter) and auto top-up outcomes, to a callback and a
   * signed webhook, from an outbox (see docs/auto-top-up.md). Default: none.
   */
  alerts?: AlertsOptions;
  /**
   * The batched path: concurrent reserve, commit, release and track calls of this meter that
   * arrive while earlier ones are in flight go out together as one SQL call and one
   * transaction, each operation answering exactly as it would alone (one that fails rolls
   * back only itself). No timer: a lone call leaves at once. `true` uses the defaults
   * (`{ maxSize: 64, concurrency: 2 }`). Helps when many calls run at once (e.g. 32+ in
   * flight); see docs/server.md, "Batched path". Default `false`.
   */
  batch?: boolean | BatchOptions;
}

/** The ledger: the `MeterApi` operations plus administration. */
export interface Meter extends MeterApi {
  /** Creates or updates the schema (numbered migrations; safe to run from several processes at once). */
  migrate(): Promise<string[]>;
  reserve(userId: string, meterKey: string, amount: number, options?: ReserveOptions): Promise<ReserveResult>;
  /**
   * Holds on several counters at once, all or nothing, under one reservation id:
   * `{ "llm.input": 1200, "llm.output": 800 }` (meter key → amount). See docs/server.md.
   */
  reserve(userId: string, amounts: Record<string, number>, options?: ReserveOptions): Promise<MultiReserveResult>;
  commit(reservationId: string, options?: CommitOptions): Promise<CommitResult>;
  release(reservationId: string): Promise<ReleaseResult>;
  track(userId: string, meterKey: string, amount: number, options?: TrackOptions): Promise<TrackResult>;
  grant(userId: string, counterKey: string, amount: number, options?: GrantOptions): Promise<GrantResult>;
  adjust(userId: string, counterKey: string, delta: number, options: AdjustOptions): Promise<AdjustResult>;
  usage(userId: string): Promise<Usage>;
  /**
   * One reservation's state (open, committed, released or expired, what it held, charged and
   * gave back, its metadata), or null when there is no such id. It does not check who asks:
   * compare `userId` before showing it to a user.
   */
  reservation(reservationId: string): Promise<Reservation | null>;
  upsertSubscription(input: SubscriptionInput): Promise<Subscription>;
  /** Recomputes balances from the entries; returns every difference (an empty array when sound). */
  audit(userId?: string): Promise<AuditDifference[]>;
  /** Writes expiry entries for holds past their expiry. Returns how many. */
  sweepExpired(limit?: number): Promise<number>;
  /** The user's most recent ledger entries, newest first (for a usage history view). */
  entries(userId: string, options?: EntriesOptions): Promise<LedgerEntry[]>;
  /** Net usage per UTC day over the last `days` days, oldest first, every day listed. */
  usageByDay(userId: string, options?: UsageByDayOptions): Promise<DailyUsage[]>;
  /**
   * Pushes the total of every closed period of the counters in `stripe.meters` to Stripe, each
   * exactly once (an outbox; safe to run from several processes). Run it from a cron job.
   */
  syncStripeMeters(options?: SyncStripeMetersOptions): Promise<SyncStripeMetersResult>;
  /**
   * A short-lived signed token for `userId` (default 15 minutes, at most 30) that a browser on
   * another origin sends as `Authorization: Bearer <token>` to the browser routes. Needs `browserTokenSecret`.
   */
  browserToken(userId: string, options?: BrowserTokenOptions): string;
  /**
   * Deletes every row the ledger keeps about a user (entries, holds, grants, balances,
   * subscription, idempotency keys, Stripe links) in one transaction, for a right-to-erasure
   * request or to reset a demo user. The ledger is otherwise append-only: correct a balance
   * with `adjust` or `grant`, never with this. Returns how many rows were deleted.
   */
  eraseUser(userId: string): Promise<number>;
  /** Auto top-up: settings, the card-saving Checkout, and the worker (`run`). See docs/auto-top-up.md. */
  readonly autoTopUp: AutoTopUpApi;
  /** Delivers queued alerts (`run`); the meter's timer calls it unless `alerts.interval` is 0. */
  readonly alerts: AlertsApi;
  /** Stops the sweeper and closes the pool this meter created. */
  close(): Promise<void>;
}

/** The pool, schema and configuration behind a meter: read with `internalsOf(meter)` inside src/server only. */
export interface MeterInternals {
  pool: pg.Pool;
  /** Unquoted schema name. */
  schemaName: string;
  /** Quoted schema name for SQL. */
  schema: string;
  config: ResolvedConfig;
  /** The NOTIFY channel balance changes are announced on (payload: the user id). */
  channel: string;
  /** Announces balance changes on `channel` after they commit (extensions call it after their own writes). */
  notifier: Notifier;
  ledger: LedgerContext;
  /** Cleanup hooks run by close() (live streams, Stripe sync…). */
  onClose: Array<() => Promise<void> | void>;
  /** Secrets that verify browser tokens (the first one signs). Empty when not configured. */
  browserTokenSecrets: string[];
  /** The billing integration (Stripe), when configured. */
  billing?: BillingHooks;
  /** The time bounds of every database call (the `timeouts` option with its defaults). */
  timeouts: ResolvedTimeouts;
}

/** Creates the ledger over Postgres. Call `await meter.migrate()` once before use. */
export function createMeter(options: CreateMeterOptions): Meter {
  if (!options || typeof options !== "object") {
    throw new MeterError("invalid_request", "createMeter needs an options object.");
  }
  const schemaName = checkSchemaName(options.schema ?? "meterkit");
  const schema = ident(schemaName);
  const timeouts = resolveTimeouts(options.timeouts);
  const config = resolveConfig(options.plans, options.meters, options.prices ?? {}, options.defaultPlan);
  const holdTtl = ttlMs(options.holdTtl, 600_000);
  const tokenSecrets = browserTokenSecrets(options.browserTokenSecret);
  const batchOptions = resolveBatchOptions(options.batch);
  const db = createPool(options.database, options.poolSize ?? 10, timeouts);
  const { pool, owned } = db;

  let synced: Promise<void> | null = null;
  const plansJson = JSON.stringify(config.plans);
  const sync = async () => {
    await query(pool, `SELECT ${schema}.sync_config($1::jsonb, $2)`, [plansJson, config.defaultPlan]);
  };
  const ledger: LedgerContext = {
    pool,
    schema,
    config,
    holdTtl,
    ready() {
      synced ??= sync().catch((err: unknown) => {
        synced = null; // try again on the next call (the database may come back)
        throw err;
      });
      return synced;
    },
    batcher: batchOptions ? createBatcher(pool, schema, batchOptions) : null,
    announce: (userId) => {
      notifier.announce(userId);
      lifecycle.changed(userId); // after commit: auto top-up and alerts (off the ledger's hot path)
    },
  };
  const channel = channelOf(schemaName);
  const notifier = createNotifier(pool, channel);

  const onClose: MeterInternals["onClose"] = [];
  let sweeper: NodeJS.Timeout | null = null;
  const sweepEvery = options.sweepInterval ?? 30_000;
  if (sweepEvery > 0) {
    sweeper = setInterval(() => {
      sweepExpired(ledger).catch(() => {}); // best effort: holds stop counting at expiry anyway
    }, sweepEvery);
    sweeper.unref();
  }

  const stripe = options.stripe ? createStripeBilling({ pool, schema, schemaName, config, ledger }, options.stripe) : null;
  const lifecycle = createCreditLifecycle({ pool, schema, schemaName, config, ledger, onClose }, stripe, options);

  let closing: Promise<void> | null = null;
  const meter: Meter = {
    async migrate() {
      try {
        const applied = await migrate(pool, schemaName);
        synced = sync();
        await synced;
        return applied;
      } catch (err) {
        synced = null;
        throw toMeterError(err);
      }
    },
    ...ledgerWrites(ledger),
    usage: (userId) => usage(ledger, userId),
    reservation: (id) => reservation(ledger, id),
    audit: (userId) => audit(ledger, userId),
    sweepExpired: (limit) => sweepExpired(ledger, limit),
    entries: (userId, o) => entries(ledger, userId, o),
    usageByDay: (userId, o) => usageByDay(ledger, userId, o),
    syncStripeMeters: (o) => (stripe ? stripe.syncMeters(o) : Promise.reject(stripeNotConfigured())),
    eraseUser: (userId) => eraseUser(ledger, userId),
    browserToken: (userId, o) => signBrowserToken(tokenSecrets, schemaName, userId, o),
    autoTopUp: lifecycle.autoTopUp,
    alerts: lifecycle.alerts,
    close() {
      closing ??= (async () => {
        if (sweeper) clearInterval(sweeper);
        const graceful = (async () => {
          // Side by side: a flush stuck on a dark network must not keep the streams open.
          const hooks = (async () => {
            for (const fn of onClose.splice(0)) await fn();
          })();
          await Promise.all([notifier.flush(), hooks]);
          if (owned) await pool.end();
        })();
        // Bounded: on a network that stopped answering, the goodbye (Terminate, FIN) is never
        // acknowledged. Past the bound, what is still open is destroyed, not waited for.
        const deadline = Date.now() + timeouts.close;
        if (await settlesWithin(graceful, timeouts.close)) {
          if (await db.socketsClosed(Math.max(0, deadline - Date.now()))) return;
        }
        db.destroySockets();
        // A call made after close() fails at once rather than opening a new connection.
        if (owned && !pool.ending) pool.end().catch(() => {});
      })();
      return closing;
    },
  };
  return attachInternals(meter, {
    pool, schemaName, schema, config, channel, notifier, ledger, onClose, browserTokenSecrets: tokenSecrets, timeouts, ...(stripe ? { billing: stripe } : {}),
  });
}
