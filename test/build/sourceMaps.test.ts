/*
 * The tarball stands alone: src/ is not shipped, so every source map carries its sources
 * (inlineSources), and no declaration map points at a .ts file that is not there.
 * Reads dist/: `npm test` builds before it runs.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const files = (readdirSync("dist", { recursive: true }) as string[]).map((f) => join("dist", f));

describe("dist source maps", () => {
  it("every JavaScript source map inlines the sources it names", () => {
    const maps = files.filter((f) => f.endsWith(".js.map"));
    expect(maps.length).toBeGreaterThan(50);
    const incomplete = maps.filter((f) => {
      const map = JSON.parse(readFileSync(f, "utf8")) as { sources: string[]; sourcesContent?: Array<string | null> };
      return map.sources.length === 0 || map.sources.some((_, i) => typeof map.sourcesContent?.[i] !== "string" || map.sourcesContent[i] === "");
    });
    expect(incomplete).toEqual([]);
  });

  it("ships no declaration maps (they would point at src/, which is not in the package)", () => {
    expect(files.filter((f) => f.endsWith(".d.ts.map"))).toEqual([]);
  });

  it("a module that got \"use client\" on top has its map shifted by that line", () => {
    const code = readFileSync("dist/react/BalanceBadge.js", "utf8").split("\n");
    const map = JSON.parse(readFileSync("dist/react/BalanceBadge.js.map", "utf8")) as { mappings: string; sourcesContent: string[] };
    expect(code[0]).toBe('"use client";');
    // The first mapped line of the output and the source line it points at must import the same module.
    const groups = map.mappings.split(";");
    const generated = groups.findIndex((g) => g !== "");
    const sourceLine = vlq(groups[generated]!)[2]!;
    const specifier = (line: string | undefined) => /from ["']([^"']+)["']/.exec(line ?? "")?.[1];
    expect(specifier(code[generated])).toBeDefined();
    expect(specifier(map.sourcesContent[0]!.split("\n")[sourceLine])).toBe(specifier(code[generated]));
  });
});

/** The fields of one source map segment (Base64 VLQ). */
function vlq(segment: string): number[] {
  const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const out: number[] = [];
  let value = 0;
  let shift = 0;
  for (const ch of segment.split(",")[0]!) {
    const digit = B64.indexOf(ch);
    value += (digit & 31) << shift;
    if (digit & 32) shift += 5;
    else {
      out.push(value & 1 ? -(value >> 1) : value >> 1);
      value = 0;
      shift = 0;
    }
  }
  return out;
}
