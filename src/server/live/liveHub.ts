import pg from "pg";
import { MeterError } from "../../core/errors.js";
import type { Usage } from "../../core/types.js";
import type { MeterInternals } from "../createMeter.js";
import { toMeterError } from "../db.js";
import { settlesWithin } from "../timeouts.js";
import { usage as readUsage } from "../ledger/subscription.js";
import { createUsageSink, type UsageSink } from "./usageStream.js";

/** Options of the live balance stream (`GET /usage/stream`). */
export interface LiveOptions {
  /** Interval between heartbeat comments on every open stream, in ms. Default 15 000. */
  heartbeat?: number;
  /** The `retry:` hint sent to clients: how long to wait before reconnecting, in ms. Default 3 000. */
  retry?: number;
  /** Open stream connections one user may hold in this process; one more is refused with 429 `too_many_requests`. Default 5. */
  maxStreamsPerUser?: number;
  /** Open stream connections in this process; one more is refused with 503 `unavailable`. Default 10 000. */
  maxStreams?: number;
  /**
   * Where the one `LISTEN` connection goes: a connection string or `pg.ClientConfig`. Set it
   * when the pool goes through PgBouncer in transaction mode, which cannot carry `LISTEN`.
   * Default: the meter's pool settings.
   */
  listenDatabase?: string | pg.ClientConfig;
}

/** What tests and the benchmark can observe of a hub. */
export interface LiveStats {
  /** Open stream connections (a dropped stream counts until its connection is gone). */
  streams: number;
  users: number;
  listening: boolean;
  /** Times the LISTEN connection was (re)established. */
  connects: number;
}

interface UserEntry {
  sinks: Set<UsageSink>;
  fetching: boolean;
  again: boolean;
  force: boolean;
}

const MAX_BACKOFF = 5_000;
/** The `application_name` of the LISTEN connection. */
export const LISTEN_APPLICATION_NAME = "meterkit-listen";
/** Heartbeats a client may leave its buffer full before its stream is dropped. */
const MAX_STALLED_BEATS = 4;
/** Users whose Usage is re-read at once after a reconnect or on a heartbeat. */
const RESYNC_CONCURRENCY = 4;

/**
 * The live balance fan-out of one meter in this process: ONE `LISTEN` connection whatever the
 * number of streams, and per user the set of open streams. A notification (the user id) leads
 * to one Usage read per user, however many streams and notifications — reads coalesce — sent
 * to every stream of that user. The connection reconnects by itself (backoff with jitter) and
 * then re-sends current usage to everyone, since changes made meanwhile were not announced.
 * Each heartbeat also re-reads every watched user (sending only what changed), which heals an
 * announcement lost between a commit and its NOTIFY.
 */
export class LiveHub {
  private readonly users = new Map<string, UserEntry>();
  private client: pg.Client | null = null;
  private connecting: Promise<void> | null = null;
  private listening = false;
  private connects = 0;
  private failures = 0;
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private readonly beat: NodeJS.Timeout;
  /** Open stream connections in this process, and per user. */
  private streams = 0;
  private readonly openByUser = new Map<string, number>();
  private refreshing = false;
  /** A heartbeat ping is in flight on the LISTEN connection. */
  private pinging = false;
  /** Drops the current LISTEN connection (and schedules a reconnect). */
  private lost: (() => void) | null = null;
  private readonly heartbeatMs: number;
  private readonly retry: number;
  private readonly perUser: number;
  private readonly maxStreams: number;

  constructor(
    private readonly internals: MeterInternals,
    private readonly options: LiveOptions = {},
  ) {
    this.heartbeatMs = options.heartbeat ?? 15_000;
    this.retry = options.retry ?? 3_000;
    this.perUser = options.maxStreamsPerUser ?? 5;
    this.maxStreams = options.maxStreams ?? 10_000;
    // One timer for every stream, not one per stream.
    this.beat = setInterval(() => this.heartbeat(), this.heartbeatMs);
    this.beat.unref();
  }

  stats(): LiveStats {
    return { streams: this.streams, users: this.users.size, listening: this.listening, connects: this.connects };
  }

  /**
   * Opens a stream for `userId`: makes sure LISTEN is on (so no change between the first read
   * and the subscription is lost), registers the stream, then sends the current Usage.
   */
  async open(userId: string, signal: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    if (this.closed) throw new MeterError("unavailable", "The meter is closing.");
    // The limits count open connections, not streams still fanned out to: a stream the hub
    // dropped (a client that stopped reading) keeps its slot until its connection is gone
    // (the request's signal aborts) or its body is cancelled.
    if ((this.openByUser.get(userId) ?? 0) >= this.perUser) {
      throw new MeterError("too_many_requests", `Too many open usage streams for this user (at most ${this.perUser}); close one first.`, {
        reason: "too_many_streams",
        limit: this.perUser,
      });
    }
    if (this.streams >= this.maxStreams) {
      throw new MeterError("unavailable", "This server has too many open usage streams; retry later.", { reason: "too_many_streams" });
    }
    // The slot is taken before the first await, so concurrent opens cannot overshoot the limit.
    this.streams++;
    this.openByUser.set(userId, (this.openByUser.get(userId) ?? 0) + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      signal.removeEventListener("abort", onAbort);
      if (this.closed) return; // close() let go of every slot at once
      this.streams--;
      const n = (this.openByUser.get(userId) ?? 1) - 1;
      if (n > 0) this.openByUser.set(userId, n);
      else this.openByUser.delete(userId);
    };
    let sink: UsageSink | null = null;
    const onAbort = () => {
      sink?.close(true);
      release();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      await this.listen();
      // The first read doubles as the check that the user exists (not_found → no stream).
      const first = await readUsage(this.internals.ledger, userId);
      if (this.closed) throw new MeterError("unavailable", "The meter is closing.");
      let entry = this.users.get(userId);
      if (!entry) {
        entry = { sinks: new Set(), fetching: false, again: false, force: false };
        this.users.set(userId, entry);
      }
      const e = entry;
      const s: UsageSink = createUsageSink({
        userId,
        retry: this.retry,
        maxStalledBeats: MAX_STALLED_BEATS,
        onClose: (dropped) => {
          e.sinks.delete(s);
          if (e.sinks.size === 0 && this.users.get(userId) === e) this.users.delete(userId);
          if (!dropped) release();
        },
      });
      sink = s;
      e.sinks.add(s);
      s.send(first, true);
      // A change may have landed between the read and the registration: read again if one is under way.
      if (e.fetching) e.again = true;
      if (signal.aborted) onAbort();
      return s.stream;
    } catch (err) {
      release();
      throw err;
    }
  }

  /** Ends every stream and the LISTEN connection, within the meter's `timeouts.close`. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.beat);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    for (const entry of [...this.users.values()]) for (const s of [...entry.sinks]) s.close();
    this.users.clear();
    this.openByUser.clear();
    this.streams = 0;
    const c = this.client;
    this.client = null;
    this.listening = false;
    if (!c) return;
    // A dark network never acknowledges the goodbye: past the bound the socket is destroyed.
    if (!(await settlesWithin(c.end(), this.internals.timeouts.close))) destroyClient(c);
  }

  /** Resolves once LISTEN is on; rejects with `unavailable` when the database cannot be reached. */
  private listen(): Promise<void> {
    if (this.listening) return Promise.resolve();
    this.connecting ??= this.connect().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  private async connect(): Promise<void> {
    const config = this.options.listenDatabase ?? { ...this.internals.pool.options };
    const t = this.internals.timeouts;
    // This connection is ours alone, so every bound is set on it whatever the pool's settings:
    // a reconnect attempt takes at most `connect` + `statement`, a ping at most `statement`.
    const bounds: pg.ClientConfig = {
      connectionTimeoutMillis: t.connect,
      query_timeout: t.statement,
      keepAlive: true,
      keepAliveInitialDelayMillis: t.keepAlive,
      // Named, so operators (and tests) can find it in pg_stat_activity.
      application_name: LISTEN_APPLICATION_NAME,
    };
    const client = new pg.Client(typeof config === "string" ? { connectionString: config, ...bounds } : { ...config, ...bounds });
    let dead = false;
    const lost = () => {
      if (dead) return;
      dead = true;
      if (this.client === client) {
        this.client = null;
        this.listening = false;
        this.pinging = false;
      }
      // Destroyed, not ended: on a dark network a graceful end would wait for ever.
      destroyClient(client);
      this.scheduleReconnect();
    };
    this.lost = lost;
    client.on("error", lost);
    client.on("end", lost);
    client.on("notification", (n) => {
      if (n.channel === this.internals.channel && n.payload) this.refresh(n.payload, false);
    });
    try {
      await client.connect();
      await client.query(`LISTEN "${this.internals.channel.replace(/"/g, '""')}"`);
    } catch (err) {
      dead = true;
      destroyClient(client);
      if (this.users.size > 0) this.scheduleReconnect();
      throw toMeterError(err);
    }
    if (this.closed) {
      dead = true;
      await client.end().catch(() => {});
      return;
    }
    const reconnected = this.connects > 0;
    this.client = client;
    this.listening = true;
    this.connects++;
    this.failures = 0;
    // Changes made while we were deaf were not announced: re-send everyone's current usage.
    if (reconnected) void this.resyncAll();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer || this.users.size === 0) return;
    const delay = Math.min(MAX_BACKOFF, 100 * 2 ** this.failures++) * (0.5 + Math.random() / 2);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.listening || this.closed) return;
      this.listen().catch(() => this.scheduleReconnect());
    }, delay);
    this.reconnectTimer.unref();
  }

  private async resyncAll(force = true): Promise<void> {
    const queue = [...this.users.keys()];
    const worker = async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) await this.refresh(id, force);
    };
    await Promise.all(Array.from({ length: RESYNC_CONCURRENCY }, worker));
  }

  /** Reads the user's Usage once and sends it to all their streams; calls during a read coalesce into one more read. */
  private async refresh(userId: string, force: boolean): Promise<void> {
    const entry = this.users.get(userId);
    if (!entry) return;
    if (entry.fetching) {
      entry.again = true;
      entry.force ||= force;
      return;
    }
    entry.fetching = true;
    entry.force = force;
    try {
      do {
        entry.again = false;
        const f = entry.force;
        entry.force = false;
        let usage: Usage;
        try {
          usage = await readUsage(this.internals.ledger, userId);
        } catch {
          // The database is away: the reconnect that follows re-sends everything.
          return;
        }
        for (const s of entry.sinks) s.send(usage, f);
      } while (entry.again && entry.sinks.size > 0);
    } finally {
      entry.fetching = false;
    }
  }

  private heartbeat(): void {
    for (const entry of this.users.values()) {
      for (const s of [...entry.sinks]) if (!s.heartbeat()) s.close(true);
    }
    // Announcements go out after commit (src/server/notifier.ts), so a process that dies in
    // between loses one: re-reading on the heartbeat heals that within one interval. Streams
    // only get an event when the version moved.
    if (this.listening && !this.refreshing) {
      this.refreshing = true;
      void this.resyncAll(false).finally(() => (this.refreshing = false));
    }
    // A half-open connection (a network cut) shows no error: a ping finds out. It is bounded
    // (the connection's query timeout), fails the connection when it gets no answer, and is
    // never sent while the previous one is pending (one query at a time on a pg client).
    const c = this.client;
    const lost = this.lost;
    if (c && lost && this.listening && !this.pinging) {
      this.pinging = true;
      c.query("SELECT 1").then(
        () => {
          if (this.client === c) this.pinging = false;
        },
        () => lost(),
      );
    }
  }
}

const hubs = new WeakMap<MeterInternals, LiveHub>();

/** What the meter's hub in this process holds, or null when no stream was ever opened. */
export function liveStats(internals: MeterInternals): LiveStats | null {
  return hubs.get(internals)?.stats() ?? null;
}

/** The one hub of a meter in this process, created on first use and closed with `meter.close()`. */
export function liveHub(internals: MeterInternals, options?: LiveOptions): LiveHub {
  let hub = hubs.get(internals);
  if (!hub) {
    const h = new LiveHub(internals, options);
    hubs.set(internals, h);
    internals.onClose.push(() => h.close());
    hub = h;
  }
  return hub;
}

/** Closes a pg client's socket at once, without the goodbye a dark network would never acknowledge. */
function destroyClient(client: pg.Client): void {
  client.connection.stream.destroy();
}
