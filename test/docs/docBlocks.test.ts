import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { docBlocks } from "./docBlocks.js";

/** The docs test's reading of a markdown file: which blocks, where, and what it does with each. */
function blocksOf(markdown: string) {
  const root = mkdtempSync(join(tmpdir(), "docblocks-"));
  writeFileSync(join(root, "x.md"), markdown);
  return docBlocks(root, join(root, "x.md")).map(({ where, lang, mode, reason, code }) => ({ where, lang, mode, reason, code }));
}

describe("docBlocks", () => {
  test("a ts block that imports a Node entry runs; one that does not, and tsx, are type-checked; other languages are left alone", () => {
    const md = [
      "# Title",
      "```ts",
      'import { createMeter } from "meterkit/server";',
      "```",
      "```typescript",
      "const x: number = 1;",
      "```",
      "```tsx",
      'import { BalanceBadge } from "meterkit/react";',
      "```",
      "```sh",
      "npm i meterkit",
      "```",
      "```js",
      'import { createMeter } from "meterkit/server";',
      "```",
    ].join("\n");
    expect(blocksOf(md).map((b) => [b.where, b.lang, b.mode])).toEqual([
      ["x.md:3", "ts", "run"],
      ["x.md:6", "ts", "typecheck"],
      ["x.md:9", "tsx", "typecheck"],
      ["x.md:15", "js", "run"],
    ]);
  });

  test("a directive on the line before the fence skips a block, keeps it from running, or makes it run, with its reason", () => {
    const md = [
      "<!-- docs-test: skip — a fragment -->",
      "```ts",
      "meter.reserve();",
      "```",
      "<!-- docs-test: no-run — needs a real Stripe key -->",
      "```ts",
      'import { createMeter } from "meterkit/server";',
      "```",
      "<!-- docs-test: run -->",
      "```ts",
      "console.log(1);",
      "```",
    ].join("\n");
    expect(blocksOf(md).map((b) => [b.where, b.mode, b.reason])).toEqual([
      ["x.md:3", "skip", "a fragment"],
      ["x.md:7", "typecheck", "needs a real Stripe key"],
      ["x.md:11", "run", null],
    ]);
  });

  test("skip and no-run need a reason; an unknown directive is refused, naming file:line", () => {
    expect(() => blocksOf("<!-- docs-test: skip -->\n```ts\nx\n```")).toThrow(/x\.md:1: "docs-test: skip" needs a reason/);
    expect(() => blocksOf("<!-- docs-test: maybe -->\n```ts\nx\n```")).toThrow(/x\.md:1: unreadable docs-test directive/);
  });

  test("an indented fence (in a list) yields its code without the indent", () => {
    expect(blocksOf("- item\n\n  ```ts\n  const a = 1;\n    const b = 2;\n  ```")[0]!.code).toBe("const a = 1;\n  const b = 2;");
  });
});
