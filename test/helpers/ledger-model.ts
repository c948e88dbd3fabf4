import { periodBounds } from "../../src/core/periods.js";

/**
 * An in-memory reference of one user's counter, written from the ledger's rules rather than
 * from its SQL: allowance first, then grants soonest-expiring first, overage per policy,
 * holds that stop counting at their expiry and resolve once, refunds that go back to grants
 * first and never beyond the hold they name, packs whose refunds claw back the unspent part
 * and leave the spent part as a debt that credits pay exactly once (never the allowance).
 */
interface Grant {
  id: string;
  amount: number;
  remaining: number;
  expiresAt: number | null;
  seq: number;
  /** Credits taken other than by spending: clawed back, or paid to a debt. */
  taken: number;
}
interface Hold {
  id: string;
  amount: number;
  status: "open" | "committed" | "released" | "expired";
  expiresAt: number;
  /** What the commit asked for (a repeat with other numbers is a conflict). */
  actual?: number;
  committed: number;
  refunded: number;
}
/** A bought pack: what it granted and cost, and what refunds and disputes took back. */
interface Pack { grantId: string; credits: number; paid: number; refunded: number; disputed: number; clawed: number }
interface Debt { amount: number; remaining: number }

export class LedgerModel {
  now: number;
  readonly balances = new Map<number, { used: number; ufg: number }>();
  readonly grants: Grant[] = [];
  readonly holds: Hold[] = [];
  readonly packs = new Map<string, Pack>();
  readonly debts: Debt[] = [];
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
      const spent = g.amount - g.remaining - g.taken;
      if (spent <= 0) continue;
      const take = Math.min(rest, spent);
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
    this.holds.push({ id, amount, status: "open", expiresAt: this.now + ttl, committed: 0, refunded: 0 });
    return true;
  }
  /** Returns "ok", "repeat" (the same resolution again) or the conflict reason. */
  resolve(id: string, release: boolean, actual: number): string {
    this.enter();
    const h = this.holds.find((x) => x.id === id)!;
    if ((h.status === "committed" && !release && h.actual === actual) || (h.status === "released" && release)) return "repeat";
    if (h.status !== "open") return h.status;
    if (release) h.status = "released";
    else {
      if (actual > 0) this.draw(actual);
      h.status = "committed";
      h.actual = actual;
      h.committed = actual;
    }
    return "ok";
  }
  /**
   * A refund naming a hold: at most what it committed minus earlier refunds against it (and,
   * like every refund, at most this period's usage). Returns the amount given back, or the
   * conflict reason for a hold that is not committed.
   */
  refundHold(id: string, amount: number): number | string {
    this.enter();
    const h = this.holds.find((x) => x.id === id)!;
    if (h.status !== "committed") return h.status;
    const applied = this.giveback(Math.min(amount, Math.max(0, h.committed - h.refunded)));
    h.refunded += applied;
    return applied;
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
  /** A grant; it pays open debts first. Returns what it paid. */
  grant(id: string, amount: number, expiresIn: number | null): number {
    this.enter();
    this.grants.push({ id, amount, remaining: amount, expiresAt: expiresIn === null ? null : this.now + expiresIn, seq: this.seq++, taken: 0 });
    return this.collect(id);
  }
  /** A bought pack (through the Stripe webhook): a grant that also records its payment. */
  buy(grantId: string, credits: number, paid: number): number {
    this.packs.set(grantId, { grantId, credits, paid, refunded: 0, disputed: 0, clawed: 0 });
    return this.grant(grantId, credits, null);
  }
  /**
   * A refund (cumulative `refunded`) or dispute of a pack's payment: credits in proportion to
   * the money lost, rounded up; the unspent part comes off the pack, the spent part becomes a
   * debt paid at once from the user's other credits. Returns the debt created.
   */
  clawback(grantId: string, refunded: number, disputed: number): number {
    this.enter();
    const p = this.packs.get(grantId)!;
    p.refunded = Math.max(p.refunded, refunded);
    p.disputed = Math.max(p.disputed, disputed);
    const target = Math.min(p.credits, Math.ceil((p.credits * Math.min(p.paid, p.refunded + p.disputed)) / p.paid));
    const delta = target - p.clawed;
    if (delta <= 0) return 0;
    const g = this.grants.find((x) => x.id === grantId)!;
    const take = Math.min(Math.max(g.remaining, 0), delta);
    g.remaining -= take;
    g.taken += take;
    p.clawed = target;
    const debt = delta - take;
    if (debt > 0) {
      this.debts.push({ amount: debt, remaining: debt });
      this.collect(null);
    }
    return debt;
  }
  /** Pays open debts, oldest first, from one grant or from every unexpired one in spending order. */
  private collect(grantId: string | null): number {
    let paid = 0;
    const sources = this.grants
      .filter((g) => g.remaining > 0 && this.active(g) && (grantId === null || g.id === grantId))
      .sort((x, y) => (x.expiresAt ?? Infinity) - (y.expiresAt ?? Infinity) || x.seq - y.seq);
    for (const d of this.debts) {
      for (const g of sources) {
        if (d.remaining === 0) break;
        const take = Math.min(d.remaining, g.remaining);
        g.remaining -= take;
        g.taken += take;
        d.remaining -= take;
        paid += take;
      }
    }
    return paid;
  }
  /** What is still owed. */
  debt(): number {
    return this.debts.reduce((s, d) => s + d.remaining, 0);
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
