#!/usr/bin/env node
/**
 * `meterkit-sync-meters <config module> [--limit N] [--lease-ms N] [--timeout-ms N] [--retry-failed]`
 *
 * Runs `meter.syncStripeMeters()` once, for a cron job. The config module's default export (or
 * its `meter` export) is a Meter, or a function returning one (sync or async). Prints the report
 * as JSON on stdout. Exit code: 0 all sent, 1 some periods failed or are too old (see the
 * report) or the run failed (database down), 2 bad usage or configuration.
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { Meter } from "../createMeter.js";
import type { SyncStripeMetersOptions } from "./syncStripeMeters.js";

const USAGE = "usage: meterkit-sync-meters <config module> [--limit N] [--lease-ms N] [--timeout-ms N] [--retry-failed]";

function parseArgs(argv: string[]): { module: string; options: SyncStripeMetersOptions } {
  const options: SyncStripeMetersOptions = {};
  let module: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const number = () => {
      const n = Number(argv[++i]);
      if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${arg} needs a positive whole number.`);
      return n;
    };
    if (arg === "--limit") options.limit = number();
    else if (arg === "--lease-ms") options.leaseMs = number();
    else if (arg === "--timeout-ms") options.requestTimeoutMs = number();
    else if (arg === "--retry-failed") options.retryFailed = true;
    else if (arg === "--help" || arg === "-h") throw new Error(USAGE);
    else if (arg.startsWith("-")) throw new Error(`Unknown option ${arg}.`);
    else if (module === undefined) module = arg;
    else throw new Error(`Unexpected argument ${arg}.`);
  }
  if (!module) throw new Error("Which config module? Pass the path of a module exporting your meter.");
  return { module, options };
}

async function loadMeter(path: string): Promise<Meter> {
  const mod = (await import(pathToFileURL(resolve(path)).href)) as { default?: unknown; meter?: unknown };
  let value = mod.default ?? mod.meter;
  if (typeof value === "function") value = await (value as () => unknown)();
  if (!value || typeof (value as Meter).syncStripeMeters !== "function") {
    throw new Error(`${path} must export (default or \`meter\`) a meter from createMeter(), or a function returning one.`);
  }
  return value as Meter;
}

async function main(): Promise<number> {
  let args: ReturnType<typeof parseArgs>;
  let meter: Meter;
  try {
    args = parseArgs(process.argv.slice(2));
    meter = await loadMeter(args.module);
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    return 2;
  }
  try {
    const report = await meter.syncStripeMeters(args.options);
    process.stdout.write(JSON.stringify(report, null, 2) + "\n");
    return report.failed.length > 0 || report.tooOld.length > 0 ? 1 : 0;
  } catch (err) {
    process.stderr.write(`meterkit-sync-meters: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    await meter.close().catch(() => {});
  }
}

process.exitCode = await main();
