import { MeterError } from "../core/errors.js";

/** Postgres identifiers, NOTIFY channel names included, are at most 63 bytes (NAMEDATALEN − 1). */
const MAX_IDENTIFIER_BYTES = 63;
const CHANNEL_PREFIX = "meterkit:";
/** Longest schema name: its NOTIFY channel `meterkit:<schema>` must still be a valid identifier (63 − 9 = 54). */
export const MAX_SCHEMA_LENGTH = MAX_IDENTIFIER_BYTES - CHANNEL_PREFIX.length;

/** The NOTIFY channel a meter on `schema` announces balance changes on (payload: the user id). */
export function channelOf(schema: string): string {
  return CHANNEL_PREFIX + schema;
}

/**
 * Checks the `schema` option at createMeter(): a lower-case SQL identifier short enough for
 * every name derived from it. A longer one would pass Postgres for the tables yet make every
 * NOTIFY fail ("identifier too long"), so writes that announce would answer `internal` and
 * live streams would get no events.
 */
export function checkSchemaName(name: unknown): string {
  if (typeof name !== "string" || !/^[a-z_][a-z0-9_]*$/.test(name)) {
    throw new MeterError("invalid_request", `createMeter: schema must be a lower-case SQL identifier, got ${JSON.stringify(name)}.`, { field: "schema" });
  }
  if (name.length > MAX_SCHEMA_LENGTH) {
    throw new MeterError(
      "invalid_request",
      `createMeter: schema may be at most ${MAX_SCHEMA_LENGTH} characters (its NOTIFY channel "${CHANNEL_PREFIX}<schema>" must fit Postgres' 63-byte names), got ${name.length}.`,
      { field: "schema", limit: MAX_SCHEMA_LENGTH },
    );
  }
  return name;
}
