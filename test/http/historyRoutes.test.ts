import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createMeterHandler, type MeterHandler } from "../../src/server/index.js";
import { testMeter, type TestMeter } from "../helpers/meter.js";
import { TOKEN_SECRET } from "./fixtures.js";

// GET /usage/history and GET /entries: the signed-in user's history for the React kit's UsageHistory.
let t: TestMeter;
let handler: MeterHandler<{ user?: string }>;
const BASE = "http://app.test/api/meter";
const asUser = (user: string | undefined, path: string, init: RequestInit = {}) => handler(new Request(BASE + path, init), { user });
const body = async (res: Response) => (await res.json()) as Record<string, any>;

beforeAll(async () => {
  t = await testMeter({ browserTokenSecret: TOKEN_SECRET });
  handler = createMeterHandler<{ user?: string }>(t.meter, { basePath: "/api/meter", identify: (_r, ctx) => ctx?.user });
  await t.meter.upsertSubscription({ userId: "alice", planId: "pro" });
  await t.meter.upsertSubscription({ userId: "bob", planId: "free" });
  // Alice: 7 entries (3 tracks of tokens, a reserve + commit, 1 of credits, a grant). Bob: 1.
  for (const n of [10, 20, 30]) await t.meter.track("alice", "llm.tokens", n);
  const r = await t.meter.reserve("alice", "llm.tokens", 100);
  if (!r.allowed) throw new Error("reserve refused");
  await t.meter.commit(r.reservationId, { actual: 40 });
  await t.meter.track("alice", "llm.cost", 10_000_000, { model: "gpt-4o-mini" });
  await t.meter.grant("alice", "tokens", 5_000, { idempotencyKey: "g1" });
  await t.meter.track("bob", "llm.tokens", 7);
});
afterAll(async () => {
  await t.cleanup();
});

describe("GET /usage/history", () => {
  test("answers every UTC day of the range, oldest first, with each counter's usage kept apart", async () => {
    const res = await asUser("alice", "/usage/history?days=7");
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const { days } = await body(res);
    expect(days).toHaveLength(7);
    expect(days.map((d: { date: string }) => d.date)).toEqual([...days.map((d: { date: string }) => d.date)].sort());
    expect(days[6].date).toBe(new Date().toISOString().slice(0, 10));
    // tokens: 10 + 20 + 30 tracked + 40 committed; credits counted in their own unit, never summed in.
    expect(days[6].counters.tokens).toBe(100);
    expect(days[6].counters.credits).toBe(150); // 10M input tokens at $0.15 per million
    expect(days[0].counters).toEqual({ tokens: 0, credits: 0, images: 0 });
  });

  test("defaults to 30 days", async () => {
    expect((await body(await asUser("alice", "/usage/history"))).days).toHaveLength(30);
  });

  test("reads only the identified user: a user named in the query is a 400, never someone else's data", async () => {
    const res = await asUser("bob", "/usage/history?days=1");
    expect((await body(res)).days[0].counters).toEqual({ tokens: 7 });
    const idor = await asUser("bob", "/usage/history?days=1&userId=alice");
    expect(idor.status).toBe(400);
    expect((await body(idor)).error).toMatchObject({ code: "invalid_request", field: "userId" });
  });

  test.each(["days=0", "days=367", "days=-1", "days=1.5", "days=1e2", "days=", "days=abc", "days=1&days=2", "days=%201"])(
    "?%s is 400 invalid_request",
    async (query) => {
      const res = await asUser("alice", `/usage/history?${query}`);
      expect(res.status).toBe(400);
      expect((await body(res)).error.code).toBe("invalid_request");
    },
  );

  test("is 401 without a signed-in user", async () => {
    expect((await asUser(undefined, "/usage/history")).status).toBe(401);
  });
});

describe("GET /entries", () => {
  test("pages through the user's entries newest first with a cursor until nextCursor is null", async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await asUser("alice", `/entries?limit=3${cursor ? `&before=${cursor}` : ""}`);
      expect(res.status).toBe(200);
      const page = await body(res);
      expect(page.entries.length).toBeLessThanOrEqual(3);
      seen.push(...page.entries.map((e: { id: string }) => e.id));
      cursor = page.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toHaveLength(7);
    expect(seen.map(Number)).toEqual([...seen.map(Number)].sort((a, b) => b - a));
    expect(new Set(seen).size).toBe(7);
  });

  test("an entry carries kind, counter, amount, time and the commit's refunded part", async () => {
    const { entries, nextCursor } = await body(await asUser("alice", "/entries"));
    expect(nextCursor).toBeNull();
    expect(entries[0]).toMatchObject({ kind: "grant", counter: "tokens", amount: 5_000 });
    const commit = entries.find((e: { kind: string }) => e.kind === "commit");
    expect(commit).toMatchObject({ counter: "tokens", amount: 40, metadata: expect.objectContaining({ refunded: 60 }) });
    expect(Date.parse(entries[0].at)).not.toBeNaN();
  });

  test("never shows another user's entries, whatever the query or cursor says", async () => {
    const alice = (await body(await asUser("alice", "/entries"))).entries.map((e: { id: string }) => e.id);
    const bob = await body(await asUser("bob", `/entries?before=${Number(alice[0]) + 1000}`));
    expect(bob.entries).toHaveLength(1);
    expect(bob.entries[0]).toMatchObject({ amount: 7 });
    expect(alice).not.toContain(bob.entries[0].id);
    expect((await asUser("bob", "/entries?user=alice")).status).toBe(400);
  });

  test.each(["limit=0", "limit=101", "limit=x", "before=-5", "before=1.5", "before=abc", "before=99999999999999999999", "cursor=5", "limit=1&limit=2"])(
    "?%s is 400 invalid_request",
    async (query) => {
      const res = await asUser("alice", `/entries?${query}`);
      expect(res.status).toBe(400);
      expect((await body(res)).error.code).toBe("invalid_request");
    },
  );

  test("is 401 without a signed-in user, and 405 for a POST", async () => {
    expect((await asUser(undefined, "/entries")).status).toBe(401);
    expect((await asUser("alice", "/entries", { method: "POST" })).status).toBe(405);
  });
});
