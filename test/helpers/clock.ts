import pg from "pg";

/**
 * A one-connection pool whose database clock the test sets: every ledger call of a meter
 * built on it sees `meterkit.clock`. One connection, so the session setting applies to all.
 */
export function clockPool(url: string): { pool: pg.Pool; set(at: Date | string): Promise<void>; reset(): Promise<void> } {
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  pool.on("error", () => {});
  return {
    pool,
    async set(at) {
      const iso = typeof at === "string" ? at : at.toISOString();
      await pool.query("SELECT set_config('meterkit.clock', $1, false)", [iso]);
    },
    async reset() {
      await pool.query("SELECT set_config('meterkit.clock', '', false)");
    },
  };
}
