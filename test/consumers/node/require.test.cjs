// A CommonJS app: require() every entry of meterkit (the `require` condition, dist/cjs).
const { test } = require("node:test");
const assert = require("node:assert/strict");
const entries = require("./entries.json");

for (const [entry, names] of Object.entries(entries)) {
  test(`require("${entry}") gives its exports`, () => {
    const mod = require(entry);
    for (const name of names) assert.ok(mod[name] !== undefined, `${entry} lacks ${name}`);
    assert.match(require.resolve(entry), /dist[\\/]cjs[\\/]/);
  });
}

test("meterkit/server finds its migrations from CommonJS", async () => {
  const files = await require("meterkit/server").migrationFiles();
  assert.ok(files.length > 0);
  assert.match(files[0].sql, /create/i);
});

test("meterkit/react's client modules keep \"use client\" in the CommonJS copy", () => {
  const { readFileSync } = require("node:fs");
  const { join, dirname } = require("node:path");
  const dir = dirname(require.resolve("meterkit/react"));
  assert.ok(readFileSync(join(dir, "BalanceBadge.js"), "utf8").startsWith('"use client";'));
});

test("meterkit/ai counts OpenAI tokens only with gpt-tokenizer, and says how to install it", () => {
  const { countTokens } = require("meterkit/ai");
  assert.throws(() => require.resolve("gpt-tokenizer"), /Cannot find module/);
  assert.throws(() => countTokens("hello", { model: "gpt-4o" }), /npm install gpt-tokenizer/);
  // Models without a public tokenizer are estimated without it.
  assert.equal(countTokens("hello", { model: "my-local-model" }), 5);
});
