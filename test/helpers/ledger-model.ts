import { periodBounds } from "../../src/core/periods.js";

/**
 * An in-memory reference of one user's counter, written from the ledger's rules rather than
 * from its SQL: allowance first, then grants soonest-expiring first, overage per policy,
 * holds that stop counting at their expiry, refunds that go back to grants first.
 */
interface Grant { id: string; amount: number; remaining: number; expiresAt: number | null; seq: number }
interface Hold { id: string; amount: number; status: "open" | "committed" | "released" | "expired"; expiresAt: number; result?: unknown }

export class LedgerModel {
  now: number;
  readonly balances = new Map<number, { used: number; ufg: number }>();
  readonly grants: Grant[] = [];
  readonly holds: Hold[] = [];
  private seq = 0;

  constructor(readonly quota: number, readonly overage: "record" | "reject", start: number) {
    this.now = start;
  }

  private periodStart(): number {
    return periodBounds(new Date(this.now), "month", "calendar", new Date(0)).start!.getTime();
  }
  private bal() {
    const k = this.periodStart();
    let b = this.balances.get(k);
    if (!b) this.balances.set(k, (b = { used: 0, ufg: 0 }));
    return b;
  }
  private active(g: Grant) {
    return g.expiresAt === null || g.expiresAt > this.now;
  }
  private enter() {
    for (const h of this.holds) if (h.status === "open" && h.expiresAt <= this.now) h.status = "expired";
  }
  held() {
    return this.holds.filter((h) => h.status === "open" && h.expiresAt > this.now).reduce((s, h) => s + h.amount, 0);
  }
  /** Grants count only while valid at `until` (a hold is admitted only against credits that outlive it). */
  available(until = this.now) {
    const b = this.bal();
    const grants = this.grants.filter((g) => g.expiresAt === null || g.expiresAt > until).reduce((s, g) => s + g.remaining, 0);
    return Math.max(0, this.quota - (b.used - b.ufg)) + grants - this.held();
  }
  private draw(amount: number) {
    const b = this.bal();
    let rest = amount - Math.min(amount, Math.max(0, this.quota - (b.used - b.ufg)));
    let drawn = 0;
    const order = this.grants
      .filter((g) => g.remaining > 0 && this.active(g))
      .sort((x, y) => (x.expiresAt ?? Infinity) - (y.expiresAt ?? Infinity) || x.seq - y.seq);
    for (const g of order) {
      if (rest === 0) break;
      const take = Math.min(rest, g.remaining);
      g.remaining -= take;
      drawn += take;
      rest -= take;
    }
    b.used += amount;
    b.ufg += drawn;
  }
  private giveback(amount: number): number {
    const b = this.bal();
    const applied = Math.min(amount, b.used);
    let rest = Math.min(applied, b.ufg);
    let back = 0;
    const order = this.grants
      .filter((g) => g.remaining < g.amount && this.active(g))
      .sort((x, y) => (y.expiresAt ?? Infinity) - (x.expiresAt ?? Infinity) || y.seq - x.seq);
    for (const g of order) {
      if (rest === 0) break;
      const take = Math.min(rest, g.amount - g.remaining);
      g.remaining += take;
      back += take;
      rest -= take;
    }
    b.used -= applied;
    b.ufg -= back;
    return applied;
  }

  reserve(id: string, amount: number, ttl: number): boolean {
    this.enter();
    if (this.available(this.now + ttl) < amount) return false;
    this.holds.push({ id, amount, status: "open", expiresAt: this.now + ttl });
    return true;
  }
  /** Returns "ok", "repeat" or the conflict reason. */
  resolve(id: string, release: boolean, actual: number): string {
    this.enter();
    const h = this.holds.find((x) => x.id === id)!;
    if ((h.status === "committed" && !release) || (h.status === "released" && release)) return "repeat";
    if (h.status !== "open") return h.status;
    if (release) h.status = "released";
    else {
      if (actual > 0) this.draw(actual);
      h.status = "committed";
    }
    return "ok";
  }
  track(amount: number): boolean {
    this.enter();
    if (this.overage === "reject" && this.available() < amount) return false;
    this.draw(amount);
    return true;
  }
  refund(amount: number): number {
    this.enter();
    return this.giveback(amount);
  }
  grant(id: string, amount: number, expiresIn: number | null) {
    this.enter();
    this.grants.push({ id, amount, remaining: amount, expiresAt: expiresIn === null ? null : this.now + expiresIn, seq: this.seq++ });
  }
  usage() {
    const b = this.bal();
    const grantsLeft = this.grants.filter((g) => this.active(g)).reduce((s, g) => s + g.remaining, 0);
    const held = this.held();
    return {
      quota: this.quota,
      used: b.used,
      held,
      granted: grantsLeft + b.ufg,
      remaining: Math.max(0, Math.max(0, this.quota - (b.used - b.ufg)) + grantsLeft - held),
      periodStart: new Date(this.periodStart()).toISOString(),
    };
  }
}
