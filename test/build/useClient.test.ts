/*
 * The built React entry as Next.js App Router reads it: every client module (one that uses
 * React, react-query or zustand at run time, or imports such a module) starts with
 * "use client", in the ES modules and in the CommonJS copy; the barrel does not, so the
 * server-safe helpers it re-exports (formatAmount, meterKeys) stay callable on the server.
 * Reads dist/: `npm test` builds before it runs.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const DIRS = ["dist/react", "dist/cjs/react"];
const CLIENT_IMPORT = /(?:from\s*|require\()["'](?:react|react-dom|@tanstack\/react-query|zustand)(?:\/(?!jsx-runtime)[^"']*)?["']/;
const LOCAL_IMPORT = /(?:from\s*|require\()["']\.\/([^"']+\.js)["']/g;
const hasDirective = (code: string) => code.startsWith('"use client";\n');
// Building elements is not a client feature (React's server build exports these): a module that
// takes only them from "react" (messages.js, for the `fill` that formatAmount uses) stays server-safe.
const ELEMENT_APIS = new Set(["createElement", "Fragment", "isValidElement", "cloneElement", "Children"]);
function onlyBuildsElements(code: string): boolean {
  const esm = [...code.matchAll(/import\s*\{([^}]*)\}\s*from\s*["']react["']/g)].flatMap((m) => m[1]!.split(",").map((n) => n.trim().split(/\s+as\s+/)[0]!));
  const cjs = [...code.matchAll(/import_react\d*\.(\w+)/g)].map((m) => m[1]!);
  const names = [...esm, ...cjs].filter(Boolean);
  const other = /(?:from\s*|require\()["'](?:react-dom|@tanstack\/react-query|zustand)/.test(code) || /import\s+(?:\*|\w+)\s*(?:as\s+\w+\s*)?from\s*["']react["']/.test(code);
  return names.length > 0 && !other && names.every((n) => ELEMENT_APIS.has(n));
}

function modules(dir: string): Map<string, string> {
  return new Map(readdirSync(dir).filter((f) => f.endsWith(".js")).map((f) => [f, readFileSync(join(dir, f), "utf8")]));
}

describe.each(DIRS)("%s", (dir) => {
  it("is built", () => {
    expect(existsSync(dir), `${dir} is missing: run npm run build`).toBe(true);
  });

  it("every module that uses React, react-query or zustand starts with \"use client\"", () => {
    const files = modules(dir);
    const missing = [...files].filter(([f, code]) => f !== "index.js" && CLIENT_IMPORT.test(code) && !onlyBuildsElements(code) && !hasDirective(code)).map(([f]) => f);
    expect(missing).toEqual([]);
  });

  it("every module that imports a client module is a client module too", () => {
    const files = modules(dir);
    const missing: string[] = [];
    for (const [f, code] of files) {
      if (f === "index.js" || hasDirective(code)) continue;
      for (const [, dep] of code.matchAll(LOCAL_IMPORT)) if (hasDirective(files.get(dep!) ?? "")) missing.push(`${f} → ${dep}`);
    }
    expect(missing).toEqual([]);
  });

  it("the components and hooks are client modules; the barrel and the pure helpers are not", () => {
    const files = modules(dir);
    for (const f of ["MeterProvider.js", "BalanceBadge.js", "BuyCreditsButton.js", "LimitReachedDialog.js", "useUsage.js", "useCounter.js", "useLimitReached.js"]) {
      expect(hasDirective(files.get(f) ?? ""), f).toBe(true);
    }
    for (const f of ["index.js", "format.js", "messages.js", "queryKeys.js"]) expect(hasDirective(files.get(f) ?? "x"), f).toBe(false);
  });
});
