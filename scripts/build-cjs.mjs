// Builds dist/cjs: a CommonJS copy of every compiled ES module, for the exports map's `require`
// condition. Node ≥ 20.19 could require() the ES modules themselves, but Jest cannot (it runs
// CommonJS in its own module loader and refuses ES modules from node_modules before Node 24.9):
// a Jest user with the default config would get "Must use import to load ES Module".
//
// Each file is transformed on its own (no bundling), so the module graph, `"use client"` and
// the relative `./x.js` imports stay as they are; dist/cjs/package.json says `commonjs`, so
// those `.js` files and the copied `.d.ts` files are CommonJS to Node and TypeScript.
// `import()` stays a real dynamic import; `import.meta.url` becomes the file's URL.
import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { transformSync } from "esbuild";

const SRC = "dist";
const OUT = "dist/cjs";
// The CLI is an ES module with top-level await and runs as a bin, never through `require`.
const SKIP = new Set(["server/stripe/cli.js"]);
const DIRECTIVE = /^"use client";\n/;
const META_URL = "__meterkitModuleUrl";

function* walk(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (path !== OUT) yield* walk(path);
    } else yield path;
  }
}

let count = 0;
for (const path of walk(SRC)) {
  const rel = relative(SRC, path);
  const out = join(OUT, rel);
  if (rel.endsWith(".d.ts")) {
    mkdirSync(dirname(out), { recursive: true });
    cpSync(path, out);
    continue;
  }
  if (!rel.endsWith(".js") || SKIP.has(rel)) continue;
  let code = readFileSync(path, "utf8").replace(/\n\/\/# sourceMappingURL=.*\n?$/, "\n");
  const client = DIRECTIVE.test(code);
  const usesMetaUrl = code.includes("import.meta.url");
  const result = transformSync(code.replace(DIRECTIVE, ""), {
    format: "cjs",
    platform: "node",
    target: "node20",
    loader: "js",
    supported: { "dynamic-import": true },
    define: usesMetaUrl ? { "import.meta.url": META_URL } : {},
    logLevel: "error",
  });
  const prologue = [
    client ? '"use client";' : "",
    usesMetaUrl ? `const ${META_URL} = require("node:url").pathToFileURL(__filename).href;` : "",
  ].filter(Boolean);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, [...prologue, result.code].join("\n"));
  count++;
}
// Non-JavaScript assets the code reads at run time (the migrations).
cpSync(join(SRC, "server/migrations"), join(OUT, "server/migrations"), { recursive: true });
writeFileSync(join(OUT, "package.json"), `${JSON.stringify({ type: "commonjs" }, null, 2)}\n`);
console.log(`build-cjs: ${count} CommonJS modules in ${OUT}`);
