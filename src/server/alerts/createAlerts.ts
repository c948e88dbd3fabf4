import { randomUUID } from "node:crypto";
import { assertAmount, assertId } from "../../core/amounts.js";
import { MeterError } from "../../core/errors.js";
import type { MeterInternals } from "../createMeter.js";
import { assertCounter } from "../config.js";
import { createOutbox, run } from "../outbox/outbox.js";
import { ALERT_SIGNATURE_HEADER, signAlert } from "./alertSignature.js";
import type { AlertsApi, AlertsOptions, MeterAlert, RunAlertsResult } from "./types.js";

/** The engine behind `meter.alerts`, plus the after-commit hook createMeter wires. */
export interface AlertsEngine extends AlertsApi {
  /** Queues a threshold check of `userId` after a committed change; coalesced, never throws. */
  changed(userId: string): void;
  /** Delivers soon (an auto top-up outcome was just queued). */
  wake(): void;
  stop(): void;
}

interface AlertRow {
  id: string;
  type: MeterAlert["type"];
  user_id: string;
  counter_key: string;
  data: Record<string, unknown>;
  created_at: Date;
  attempts: number;
}

type Internals = Pick<MeterInternals, "pool" | "schema" | "config" | "ledger">;

/** Checks `createMeter({ alerts })` and builds the engine. */
export function createAlerts(internals: Internals, options: AlertsOptions): AlertsEngine {
  const o = options;
  const rules = (o.thresholds ?? []).map((t, i) => {
    const where = `alerts.thresholds[${i}]`;
    const counter = assertCounter(internals.config, t?.counter);
    if ((t.usedPercent === undefined) === (t.remainingBelow === undefined)) {
      throw new MeterError("invalid_request", `${where}: give exactly one of usedPercent or remainingBelow.`, { field: where });
    }
    if (t.usedPercent !== undefined && !(typeof t.usedPercent === "number" && t.usedPercent > 0 && t.usedPercent <= 1000)) {
      throw new MeterError("invalid_request", `${where}.usedPercent must be a number in (0, 1000].`, { field: where });
    }
    const remainingBelow = t.remainingBelow === undefined ? undefined : assertAmount(t.remainingBelow, `${where}.remainingBelow`);
    const id = t.id === undefined ? `${counter}:${t.usedPercent !== undefined ? `used:${t.usedPercent}` : `remaining:${remainingBelow}`}` : assertId(t.id, `${where}.id`);
    return { id, counter, ...(t.usedPercent !== undefined ? { usedPercent: t.usedPercent } : { remainingBelow }) };
  });
  if (new Set(rules.map((r) => `${r.counter}\u001f${r.id}`)).size !== rules.length) {
    throw new MeterError("invalid_request", "alerts.thresholds: two rules of one counter have the same id.", { field: "alerts.thresholds" });
  }
  if (o.webhook) {
    try {
      const u = new URL(o.webhook.url);
      if (u.protocol !== "https:" && u.protocol !== "http:") throw new Error();
    } catch {
      throw new MeterError("invalid_request", "alerts.webhook.url must be an absolute http(s) URL.", { field: "alerts.webhook.url" });
    }
    if (typeof o.webhook.secret !== "string" || o.webhook.secret.length < 32) {
      throw new MeterError("invalid_request", "alerts.webhook.secret must be at least 32 characters.", { field: "alerts.webhook.secret" });
    }
  }
  if (o.onAlert !== undefined && typeof o.onAlert !== "function") {
    throw new MeterError("invalid_request", "alerts.onAlert must be a function.", { field: "alerts.onAlert" });
  }
  const interval = o.interval === undefined ? 5_000 : assertAmount(o.interval, "alerts.interval", { allowZero: true });
  const maxAttempts = o.maxAttempts === undefined ? 20 : assertAmount(o.maxAttempts, "alerts.maxAttempts");
  const timeout = o.webhook?.timeoutMs ?? 10_000;
  const rulesJson = JSON.stringify(rules);
  const s = internals.schema;
  const outbox = createOutbox(internals.pool, s, "alert_outbox");

  let pending = new Set<string>();
  let observing: Promise<void> | null = null;
  const observeBatch = async () => {
    while (pending.size > 0) {
      const batch = [...pending].sort(); // one lock order for every batch
      pending = new Set();
      try {
        await internals.ledger.ready();
        const rows = await run<{ n: number }>(internals.pool, `SELECT ${s}.alerts_observe(u, $2::jsonb) AS n FROM unnest($1::text[]) u`, [batch, rulesJson]);
        if (rows.some((r) => r.n > 0)) wake();
      } catch {
        // Best effort: the next change of the user checks again.
      }
    }
  };

  let timer: NodeJS.Timeout | null = null;
  let running: Promise<RunAlertsResult> | null = null;
  let stopped = false;
  const wake = () => {
    if (interval === 0 || stopped) return;
    setImmediate(() => {
      if (!running && !stopped) void engine.run().catch(() => {});
    });
  };
  if (interval > 0) {
    timer = setInterval(() => {
      if (!running) void engine.run().catch(() => {});
    }, interval);
    timer.unref();
  }

  async function deliver(alert: MeterAlert): Promise<void> {
    if (o.onAlert) await o.onAlert(alert);
    if (o.webhook) {
      const body = JSON.stringify(alert);
      const res = await fetch(o.webhook.url, {
        method: "POST",
        headers: { "content-type": "application/json", [ALERT_SIGNATURE_HEADER]: signAlert(body, o.webhook.secret), "user-agent": "meterkit-alerts" },
        body,
        signal: AbortSignal.timeout(timeout),
      });
      await res.arrayBuffer().catch(() => {});
      if (res.status < 200 || res.status >= 300) throw new Error(`The alert webhook answered ${res.status}.`);
    }
  }

  const engine: AlertsEngine = {
    run(options = {}) {
      const limit = options.limit === undefined ? 100 : assertAmount(options.limit, "limit");
      const pass = (async () => {
        const result: RunAlertsResult = { delivered: [], retrying: [], failed: [] };
        await internals.ledger.ready();
        const claim = randomUUID();
        const rows = await outbox.claim<AlertRow>(claim, limit, Math.max(60_000, timeout * 2));
        // In the order they were queued (UPDATE … RETURNING has no order of its own).
        rows.sort((a, b) => new Date(a.created_at).getTime() - new Date(b.created_at).getTime() || a.id.localeCompare(b.id));
        for (const row of rows) {
          const alert: MeterAlert = {
            id: row.id,
            type: row.type,
            created: Math.floor(new Date(row.created_at).getTime() / 1000),
            userId: row.user_id,
            counter: row.counter_key,
            data: row.data,
          };
          try {
            await deliver(alert);
            await outbox.finish(row.id, claim, "sent");
            result.delivered.push(row.id);
          } catch (err) {
            const message = err instanceof Error ? err.message : String(err);
            if (row.attempts >= maxAttempts) {
              await outbox.finish(row.id, claim, "failed", { last_error: message.slice(0, 2000) });
              result.failed.push(row.id);
            } else {
              await outbox.retryLater(row.id, claim, row.attempts, message);
              result.retrying.push(row.id);
            }
          }
        }
        return result;
      })();
      running = pass;
      return pass.finally(() => {
        if (running === pass) running = null;
      });
    },
    changed(userId) {
      if (rules.length === 0) return;
      pending.add(userId);
      if (!observing) {
        observing = new Promise<void>((r) => setImmediate(r)).then(observeBatch).finally(() => {
          observing = null;
        });
      }
    },
    wake,
    async flush() {
      while (observing || running) await (observing ?? running);
    },
    stop() {
      stopped = true;
      if (timer) clearInterval(timer);
    },
  };
  return engine;
}
