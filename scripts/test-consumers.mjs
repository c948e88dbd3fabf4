// Installs meterkit the way users do, from the packed tarball, into projects outside this
// repository, and runs each project's own test: test/consumers/* (plain Node require/import,
// Jest, TypeScript resolution modes, a React-only install's size) and examples/next (a Next.js
// App Router app, built and browser-tested).
//
// Each project is copied to a fresh folder under the OS temp dir, so nothing resolves through
// this repository's node_modules: a missing dependency fails here as it would for a user.
// One `npm pack` serves every project (`meterkit: "file:../meterkit.tgz"` in each).
//
//   node scripts/test-consumers.mjs            every project (needs `npm run build` first)
//   node scripts/test-consumers.mjs jest node  only those
//   KEEP_CONSUMERS=1 …                         keep the temp folder for a look afterwards
import { execFileSync, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "..");
const PROJECTS = [
  ...readdirSync(join(ROOT, "test/consumers"), { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => join(ROOT, "test/consumers", d.name)),
  join(ROOT, "examples/next"),
];
const only = process.argv.slice(2);
const selected = PROJECTS.filter((p) => only.length === 0 || only.includes(basename(p)));
if (selected.length === 0) throw new Error(`no consumer project named ${only.join(", ")}`);
if (!existsSync(join(ROOT, "dist/cjs"))) throw new Error("dist/ is missing or stale: run npm run build first");

// Not mkdtemp: its mode-700 folder would keep the `postgres` system user (embedded Postgres run
// as root) away from the binaries under node_modules.
const work = join(tmpdir(), `meterkit-consumers-${randomUUID()}`);
mkdirSync(work, { mode: 0o755 });

/** Runs a command in `cwd`, streaming its output with a prefix; resolves with the exit code. */
function run(name, cwd, cmd, args) {
  return new Promise((done) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, FORCE_COLOR: "0", NEXT_TELEMETRY_DISABLED: "1" }, stdio: ["ignore", "pipe", "pipe"] });
    const prefix = (chunk) => chunk.toString().replace(/^(?=.)/gm, `[${name}] `);
    child.stdout.on("data", (c) => process.stdout.write(prefix(c)));
    child.stderr.on("data", (c) => process.stderr.write(prefix(c)));
    child.on("close", (code) => done(code ?? 1));
  });
}

const seconds = (since) => ((performance.now() - since) / 1000).toFixed(1);
const started = performance.now();
const results = [];
try {
  const tarball = execFileSync("npm", ["pack", "--silent", "--pack-destination", work], { cwd: ROOT, encoding: "utf8" }).trim().split("\n").pop();
  cpSync(join(work, tarball), join(work, "meterkit.tgz"));
  console.log(`consumers: packed ${tarball} in ${seconds(started)} s; projects in ${work}`);

  // 1. Copy and install every project at once (mostly network and disk).
  const copies = selected.map((src) => {
    const dir = join(work, basename(src));
    cpSync(src, dir, { recursive: true, filter: (p) => !/[\\/](node_modules|\.next)$/.test(p) });
    return { name: basename(src), dir };
  });
  const installStart = performance.now();
  const installed = await Promise.all(
    copies.map(async (c) => ({ ...c, code: await run(c.name, c.dir, "npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"]) })),
  );
  console.log(`consumers: installed ${copies.length} projects in ${seconds(installStart)} s`);

  // 2. Test one after another: builds and browsers want both cores.
  for (const c of installed) {
    const t = performance.now();
    const code = c.code === 0 ? await run(c.name, c.dir, "npm", ["test", "--silent"]) : c.code;
    results.push({ name: c.name, ok: code === 0, time: seconds(t), step: c.code === 0 ? "test" : "install" });
  }
} finally {
  // Removing ~1 GB of node_modules takes a minute on a busy disk: let it finish after we exit.
  if (!process.env.KEEP_CONSUMERS) spawn("rm", ["-rf", work], { detached: true, stdio: "ignore" }).unref();
}

for (const r of results) console.log(`consumers: ${r.ok ? "ok  " : "FAIL"} ${r.name} (${r.step}, ${r.time} s)`);
console.log(`consumers: ${results.filter((r) => r.ok).length} of ${results.length} projects passed in ${seconds(started)} s`);
process.exitCode = results.every((r) => r.ok) && results.length === selected.length ? 0 : 1;
