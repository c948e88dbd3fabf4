import { execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { beforeAll, describe, expect, inject, test } from "vitest";
import { createTestDatabase } from "../../src/testing/createTestDatabase.js";
import { docBlocks, docFiles, type DocBlock } from "./docBlocks.js";

/*
 * Docs that run: every TypeScript block of README.md and docs/*.md is type-checked against the
 * BUILT package (imports of `meterkit/...` resolve through a `node_modules/meterkit` link to
 * this repository's package.json exports, i.e. to dist/), and every server-side block runs as
 * a module of its own against a fresh database. The convention for skipping is in docBlocks.ts.
 * Failures name the block as file:line, and type errors the line inside the markdown file.
 */
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const WORK = join(ROOT, "test-results", "docs-blocks");
const RUN_TIMEOUT_MS = 45_000;
const run = promisify(execFile);

const blocks: DocBlock[] = docFiles(ROOT).flatMap((f) => docBlocks(ROOT, f));
const moduleName = (b: DocBlock) => `${b.file.replace(/[^\w]+/g, "_")}_L${b.line}.${b.lang}`;
/** Type errors by block, as `docs/x.md:LINE:COL TS1234 message`. */
const typeErrors = new Map<DocBlock, string[]>();

/** Newest modification time under `dir`, in ms. */
function newest(dir: string): number {
  let t = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    t = Math.max(t, entry.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** Builds dist/ when it is missing or older than src/ (npm test builds first, so usually not). */
async function ensureBuilt(): Promise<void> {
  const marker = join(ROOT, "dist", "server", "index.js");
  if (existsSync(marker) && statSync(marker).mtimeMs >= newest(join(ROOT, "src"))) return;
  await run("npm", ["run", "build"], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
}

/** A folder that looks like a user's project: its own package.json, meterkit in node_modules, the blocks as modules. */
function writeProject(): void {
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(join(WORK, "node_modules"), { recursive: true });
  symlinkSync(ROOT, join(WORK, "node_modules", "meterkit"), "dir");
  writeFileSync(join(WORK, "package.json"), JSON.stringify({ name: "docs-blocks", private: true, type: "module" }));
  writeFileSync(
    join(WORK, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        lib: ["ES2023", "DOM", "DOM.Iterable"],
        module: "NodeNext",
        moduleResolution: "NodeNext",
        jsx: "react-jsx",
        strict: true,
        skipLibCheck: true,
        noEmit: true,
        types: ["node"],
      },
      include: ["*.ts", "*.tsx"],
    }),
  );
  // What a bundler project's types declare (vite/client, next-env.d.ts): CSS imports.
  writeFileSync(join(WORK, "bundler-env.d.ts"), 'declare module "*.css";\n');
  for (const b of blocks) {
    if (b.mode === "skip") continue;
    // A block without import/export is a script; make it a module so top-level await works and names do not clash.
    const code = /^\s*(import|export)\s/m.test(b.code) ? b.code : `${b.code}\nexport {};`;
    writeFileSync(join(WORK, moduleName(b)), code + "\n");
  }
}

/** One tsc run over every block; errors mapped back to the markdown lines. */
async function typeCheck(): Promise<void> {
  const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");
  const out = await run(process.execPath, [tsc, "-p", "tsconfig.json", "--pretty", "false"], { cwd: WORK, maxBuffer: 16 * 1024 * 1024 }).then(
    (r) => r.stdout,
    (err: { stdout?: string; stderr?: string }) => (err.stdout ?? "") + (err.stderr ?? ""),
  );
  const byModule = new Map(blocks.map((b) => [moduleName(b), b]));
  for (const line of out.split("\n")) {
    const m = /^(.+?)\((\d+),(\d+)\): error (TS\d+): (.*)$/.exec(line);
    const block = m && byModule.get(m[1]!);
    if (!m) continue;
    if (!block) {
      // An error outside the blocks (a broken .d.ts in dist): pin it on every block.
      for (const b of blocks) typeErrors.set(b, [...(typeErrors.get(b) ?? []), line]);
      continue;
    }
    const mdLine = block.line + Number(m[2]) - 1;
    typeErrors.set(block, [...(typeErrors.get(block) ?? []), `${block.file}:${mdLine}:${m[3]} ${m[4]} ${m[5]}`]);
  }
}

beforeAll(async () => {
  await ensureBuilt();
  writeProject();
  await typeCheck();
}, 240_000);

describe("every TypeScript block of the docs type-checks against the built package", () => {
  const checked = blocks.filter((b) => b.mode !== "skip" && b.lang !== "js");
  test("the docs have blocks to check", () => {
    expect(checked.length).toBeGreaterThan(10);
  });
  test.each(checked.map((b) => [b.where, b] as const))("%s", (_where, b) => {
    const errors = typeErrors.get(b) ?? [];
    expect(errors, `${b.where}: the block does not type-check:\n  ${errors.join("\n  ")}`).toEqual([]);
  });
});

describe("every server-side block runs against PostgreSQL", () => {
  const runnable = blocks.filter((b) => b.mode === "run");
  test.each(runnable.map((b) => [b.where, b] as const))(
    "%s",
    async (_where, b) => {
      const db = await createTestDatabase(inject("databaseUrl"));
      try {
        const result = await runModule(join(WORK, moduleName(b)), { DATABASE_URL: db.url });
        expect(result.code, `${b.where}: the block ${result.timedOut ? `did not finish within ${RUN_TIMEOUT_MS / 1000} s (close the meter, servers and pools it opens, or mark it no-run with a reason)` : `exited with ${result.code}`}:\n${result.output}`).toBe(0);
      } finally {
        await db.drop();
      }
    },
    RUN_TIMEOUT_MS + 15_000,
  );
});

/** Runs one block as `node --import tsx block.ts` in the project folder (so `meterkit` resolves to the build). */
function runModule(file: string, env: Record<string, string>): Promise<{ code: number | null; output: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", file], {
      cwd: WORK,
      env: { ...process.env, ...env, NODE_ENV: "test", PORT: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    const keep = (c: Buffer) => {
      output = (output + c.toString()).slice(-8_000);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, RUN_TIMEOUT_MS);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output, timedOut });
    });
  });
}
