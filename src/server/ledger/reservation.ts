import { assertId } from "../../core/amounts.js";
import { query } from "../db.js";
import type { LedgerContext } from "./context.js";
import { reservationUser } from "./reservationId.js";

/** A reservation (hold) as `meter.reservation(id)` reads it. Amounts in the counter's unit. */
export interface Reservation {
  id: string;
  userId: string;
  counter: string;
  meterKey: string;
  /** `expired` as soon as the database clock passes `expiresAt`, whether or not the sweeper has run. */
  status: "open" | "committed" | "released" | "expired";
  /** What the hold reserved. */
  held: number;
  /** What the commit charged (0 unless committed; above `held` when there was overage). */
  committed: number;
  /** What went back to the balance: `held - committed` for a commit, all of `held` for a release or an expiry, 0 while open. */
  refunded: number;
  /** `committed - held` when positive. */
  overage: number;
  model: string | null;
  /** The `metadata` passed to `reserve`. */
  metadata: Record<string, unknown> | null;
  /** ISO times, by the database clock. */
  createdAt: string;
  expiresAt: string;
  /** When it was committed, released or expired; null while open. */
  resolvedAt: string | null;
}

/** Reads one reservation by id, or null when there is none. One indexed read; no lock. */
export async function reservation(ctx: LedgerContext, reservationId: string): Promise<Reservation | null> {
  const id = assertId(reservationId, "reservationId");
  await ctx.ready();
  type Row = {
    id: string; user_id: string; counter_key: string; meter_key: string; status: Reservation["status"]; amount: string;
    model: string | null; metadata: Record<string, unknown> | null; result: Record<string, unknown> | null;
    created_at: Date; expires_at: Date; resolved_at: Date | null;
  };
  // An open hold past its expiry no longer counts (the ledger reads expiry at read time): say so.
  const read = (where: string, values: unknown[]) =>
    query<Row>(
      ctx.pool,
      `SELECT id, user_id, counter_key, meter_key, amount, model, metadata, result, created_at, expires_at,
              CASE WHEN status = 'open' AND expires_at <= ${ctx.schema}.clock() THEN 'expired' ELSE status END AS status,
              CASE WHEN status = 'open' AND expires_at <= ${ctx.schema}.clock() THEN expires_at ELSE resolved_at END AS resolved_at
         FROM ${ctx.schema}.holds WHERE ${where}`,
      values,
    );
  // By (user, id) when the id names its user (one partition); ids without one, or parts of a
  // multi-counter reservation, by id alone.
  const user = reservationUser(id);
  let rows = user === null ? [] : (await read("id = $1 AND user_id = $2", [id, user])).rows;
  if (rows.length === 0) rows = (await read("id = $1", [id])).rows;
  const r = rows[0];
  if (!r) return null;
  const held = Number(r.amount);
  const num = (v: unknown) => (typeof v === "number" ? v : 0);
  const committed = r.status === "committed" ? num(r.result?.committed) : 0;
  return {
    id: r.id,
    userId: r.user_id,
    counter: r.counter_key,
    meterKey: r.meter_key,
    status: r.status,
    held,
    committed,
    refunded: r.status === "committed" ? Math.max(held - committed, 0) : r.status === "open" ? 0 : held,
    overage: Math.max(committed - held, 0),
    model: r.model,
    metadata: r.metadata,
    createdAt: r.created_at.toISOString(),
    expiresAt: r.expires_at.toISOString(),
    resolvedAt: r.resolved_at?.toISOString() ?? null,
  };
}
