// Puts `"use client"` at the top of every client module of dist/react, after tsc.
//
// A client module is one that imports React, react-query or zustand at run time (hooks,
// context, the limit store), or imports another client module. Next.js App Router then treats
// each exported component and hook as a client reference, so a server component (`page.tsx`)
// can render <MeterProvider> and <BalanceBadge> directly.
//
// Server-safe modules stay without the directive on purpose: the barrel (index.js), so that
// `formatAmount` and `meterKeys` remain plain functions a server component may call, and the
// helpers that import nothing from React (format, queryKeys, cx, counterView, request,
// usageStream, writeUsage, composeEventHandlers, …). test/build/useClient.test.ts checks the
// built files against this rule.
import { readdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";

export const DIRECTIVE = '"use client";';
const CLIENT_PACKAGES = /^(react|react-dom|@tanstack\/react-query|zustand)(\/|$)/;
// JSX alone is not a client feature: a component without hooks renders on the server too.
const SERVER_SAFE_PACKAGES = new Set(["react/jsx-runtime"]);
// Nor is building elements: React's server build exports these, so a module that imports only
// them from "react" (the messages' `fill`, used by formatAmount) stays server-safe.
const SERVER_SAFE_REACT = new Set(["createElement", "Fragment", "isValidElement", "cloneElement", "Children"]);

/** True when every `import { … } from "react"` of the module names only server-safe APIs. */
function reactImportsAreServerSafe(code) {
  const clauses = [...code.matchAll(/(?:^|\n)\s*import\s*([^"';]*?)\s*from\s*["']react["']/g)].map((m) => m[1]);
  return clauses.every((c) => {
    const named = /^\{([^}]*)\}$/.exec(c.trim());
    return named !== null && named[1].split(",").map((n) => n.trim().split(/\s+as\s+/)[0]).filter(Boolean).every((n) => SERVER_SAFE_REACT.has(n));
  });
}

/** Every `import … from "x"` / `export … from "x"` / bare `import "x"` specifier of a JS module. */
export function importsOf(code) {
  const specs = [];
  for (const m of code.matchAll(/(?:^|\n)\s*(?:import|export)\s[^"';]*?from\s*["']([^"']+)["']|(?:^|\n)\s*import\s*["']([^"']+)["']/g)) {
    specs.push(m[1] ?? m[2]);
  }
  return specs;
}

/** The names (`BalanceBadge.js`, …) of the client modules in `dir`, following local imports. */
export function clientModules(dir) {
  const files = readdirSync(dir).filter((f) => f.endsWith(".js"));
  const deps = new Map(files.map((f) => [f, importsOf(readFileSync(join(dir, f), "utf8"))]));
  const client = new Set(
    files.filter((f) =>
      deps.get(f).some((s) => CLIENT_PACKAGES.test(s) && !SERVER_SAFE_PACKAGES.has(s) && !(s === "react" && reactImportsAreServerSafe(readFileSync(join(dir, f), "utf8")))),
    ),
  );
  // The barrel re-exports everything; it is the one module we keep server-safe regardless.
  for (let grew = true; grew; ) {
    grew = false;
    for (const f of files) {
      if (client.has(f) || f === "index.js") continue;
      if (deps.get(f).some((s) => s.startsWith("./") && client.has(s.slice(2)))) {
        client.add(f);
        grew = true;
      }
    }
  }
  return client;
}

function addDirective(dir, file) {
  const path = join(dir, file);
  const code = readFileSync(path, "utf8");
  if (code.startsWith(DIRECTIVE)) return;
  writeFileSync(path, `${DIRECTIVE}\n${code}`);
  // One line was added on top: shift the source map by one generated line.
  const mapPath = `${path}.map`;
  if (existsSync(mapPath)) {
    const map = JSON.parse(readFileSync(mapPath, "utf8"));
    map.mappings = `;${map.mappings}`;
    writeFileSync(mapPath, JSON.stringify(map));
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2] ?? "dist/react";
  const client = clientModules(dir);
  for (const f of client) addDirective(dir, f);
  console.log(`use-client: ${client.size} client modules in ${dir}`);
}
