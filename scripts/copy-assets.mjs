// Copies the non-TypeScript files the build needs next to the compiled JavaScript.
import { cpSync, existsSync, mkdirSync, readdirSync } from "node:fs";

mkdirSync("dist/server/migrations", { recursive: true });
for (const f of readdirSync("src/server/migrations")) {
  if (f.endsWith(".sql")) cpSync(`src/server/migrations/${f}`, `dist/server/migrations/${f}`);
}
if (existsSync("src/react/styles.css")) cpSync("src/react/styles.css", "dist/styles.css");
