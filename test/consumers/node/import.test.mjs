// An ES module app: import every entry of meterkit (the `import` condition, dist/).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const entries = JSON.parse(readFileSync(new URL("./entries.json", import.meta.url), "utf8"));

for (const [entry, names] of Object.entries(entries)) {
  test(`import("${entry}") gives its exports`, async () => {
    const mod = await import(entry);
    for (const name of names) assert.ok(mod[name] !== undefined, `${entry} lacks ${name}`);
    assert.match(import.meta.resolve(entry), /\/dist\/(?!cjs\/)/);
  });
}

test("import and require see the same migrations", async () => {
  const esm = await (await import("meterkit/server")).migrationFiles();
  const cjs = await createRequire(import.meta.url)("meterkit/server").migrationFiles();
  assert.deepEqual(esm.map((f) => f.name), cjs.map((f) => f.name));
});

test("meterkit/ai from ESM says how to install gpt-tokenizer", async () => {
  const { countTokens } = await import("meterkit/ai");
  assert.throws(() => countTokens("hello", { model: "gpt-4o" }), /npm install gpt-tokenizer/);
});
