import { readFileSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";

/*
 * The TypeScript code blocks of README.md and docs/*.md, and what the docs test does with
 * each. The convention, written where a reader sees it — an HTML comment on the line right
 * before the fence (GitHub and npm do not render it):
 *
 *   <!-- docs-test: skip — <reason> -->     neither type-checked nor run (a fragment, pseudo-code)
 *   <!-- docs-test: no-run — <reason> -->   type-checked only (needs a real API key, serves forever)
 *   <!-- docs-test: run -->                 run even though it imports no Node entry
 *
 * Every block fenced as ts, typescript or tsx is type-checked against the built package. A
 * ts/typescript block — or a js/javascript one, which is not type-checked — that imports a
 * Node entry (meterkit/server, /express, /client, /ai, /testing) also runs, as a module of its
 * own, with DATABASE_URL set to a fresh database; it must finish (close what it opened) and
 * exit 0. A reason is required for skip and no-run.
 */

export type BlockMode = "run" | "typecheck" | "skip";

export interface DocBlock {
  /** Path relative to the repository, e.g. `docs/server.md`. */
  file: string;
  /** 1-based line of the block's first code line in `file`. */
  line: number;
  lang: "ts" | "tsx" | "js";
  code: string;
  mode: BlockMode;
  /** Why it is skipped or not run. */
  reason: string | null;
  /** `docs/server.md:42` */
  where: string;
}

const LANGS: Record<string, DocBlock["lang"]> = { ts: "ts", typescript: "ts", tsx: "tsx", js: "js", javascript: "js" };
const NODE_ENTRY = /from\s+["']meterkit\/(server|express|client|ai|testing)["']/;
const DIRECTIVE = /^<!--\s*docs-test:\s*(skip|no-run|run)\b\s*(?:[—–:-]+\s*)?(.*?)\s*-->$/;

/** The markdown files the docs test reads: README.md and docs/*.md. */
export function docFiles(root: string): string[] {
  const docs = readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md")).sort().map((f) => join(root, "docs", f));
  return [join(root, "README.md"), ...docs];
}

/** The TypeScript blocks of one markdown file, with their mode. Throws on a malformed directive (with file:line). */
export function docBlocks(root: string, path: string): DocBlock[] {
  const file = relative(root, path);
  const lines = readFileSync(path, "utf8").split("\n");
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)/.exec(lines[i]!);
    if (!open) continue;
    const [, indent, fence, info] = open;
    let end = i + 1;
    while (end < lines.length && !lines[end]!.trimStart().startsWith(fence!)) end++;
    const lang = LANGS[info!.toLowerCase()];
    if (lang) {
      const code = lines.slice(i + 1, end).map((l) => (l.startsWith(indent!) ? l.slice(indent!.length) : l)).join("\n");
      const where = `${file}:${i + 2}`;
      const before = (lines[i - 1] ?? "").trim();
      const directive = DIRECTIVE.exec(before);
      if (before.startsWith("<!-- docs-test") && !directive) {
        throw new Error(`${file}:${i}: unreadable docs-test directive ${JSON.stringify(before)}: use skip — <reason>, no-run — <reason> or run.`);
      }
      let mode: BlockMode = lang !== "tsx" && NODE_ENTRY.test(code) ? "run" : "typecheck";
      let reason: string | null = null;
      if (directive) {
        const [, kind, why] = directive;
        if (kind !== "run" && !why) throw new Error(`${file}:${i}: "docs-test: ${kind}" needs a reason after it (— <reason>).`);
        mode = kind === "skip" ? "skip" : kind === "no-run" ? "typecheck" : "run";
        reason = why || null;
      }
      blocks.push({ file, line: i + 2, lang, code, mode, reason, where });
    }
    i = end;
  }
  return blocks;
}
