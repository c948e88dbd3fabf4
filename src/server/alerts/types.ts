/** One balance threshold of a counter: give exactly one of `usedPercent` or `remainingBelow`. */
export interface AlertThreshold {
  /** Stable id of the rule (part of each alert's id). Default: derived from the counter and the threshold (`tokens:used:80`). */
  id?: string;
  counter: string;
  /** Fires when `used` reaches this percentage of the period's quota (e.g. 80, 100). Never for a quota of 0 or unlimited. */
  usedPercent?: number;
  /** Fires when `remaining` drops below this many base units. Never for an unlimited counter. */
  remainingBelow?: number;
}

/** `createMeter({ alerts })`. */
export interface AlertsOptions {
  /** Balance thresholds; each fires once per crossing per period. Default: none. */
  thresholds?: readonly AlertThreshold[];
  /**
   * Called for every alert (thresholds and auto top-up outcomes), from the delivery outbox:
   * at least once — a throw, or a failed webhook, calls it again later — so dedupe by `alert.id`.
   */
  onAlert?: (alert: MeterAlert) => void | Promise<void>;
  /** An outgoing webhook to the host: POSTed JSON signed with `Meterkit-Signature` (see `verifyAlertSignature`). Default: none. */
  webhook?: {
    url: string;
    /** HMAC-SHA256 secret (at least 32 characters). */
    secret: string;
    /** Timeout of one delivery, in ms. Default 10 000. */
    timeoutMs?: number;
  };
  /** How often the meter's own timer delivers queued alerts, in ms; 0 turns it off (call `meter.alerts.run()`). Default 5 000. */
  interval?: number;
  /** Attempts before an alert is marked failed (backoff 1 s … 1 h between them). Default 20. */
  maxAttempts?: number;
}

/** The types of alert. */
export type MeterAlertType = "balance.threshold" | "auto_top_up.succeeded" | "auto_top_up.failed" | "auto_top_up.paused";

/** An alert, as given to `onAlert` and POSTed to the webhook. */
export interface MeterAlert {
  /** Stable: the same crossing or charge always has the same id (dedupe by it). */
  id: string;
  type: MeterAlertType;
  /** Unix seconds when it was queued. */
  created: number;
  userId: string;
  counter: string;
  /** `balance.threshold`: rule, usedPercent / remainingBelow, quota, used, remaining, periodStart, periodEnd. Auto top-up: chargeId, packId, credits, amount, currency, paymentIntent, reason?, message?. */
  data: Record<string, unknown>;
}

/** What one `meter.alerts.run()` did. */
export interface RunAlertsResult {
  delivered: string[];
  retrying: string[];
  failed: string[];
}

/** `meter.alerts`. */
export interface AlertsApi {
  /** Delivers queued alerts (leased, SKIP LOCKED, backoff). The meter's timer calls it unless `interval` is 0. */
  run(options?: { limit?: number }): Promise<RunAlertsResult>;
  /** Resolves once the threshold checks queued so far (after each change) and a running delivery pass are done (for tests). */
  flush(): Promise<void>;
}
