/**
 * meterkit/ai benchmarks (run by `npm run bench`, alone with `npm run bench -- ai`):
 * 1. Estimating a 100 KB prompt, warm: `estimateChatTokens` (gpt-tokenizer) against calling
 *    js-tiktoken directly, on the same texts in the same run.
 * 2. The latency `meteredChat` adds per call (estimate + reserve + commit on a real Postgres)
 *    against an instant stand-in model, p50 / p99.
 */
import { randomUUID } from "node:crypto";
import { getEncoding } from "js-tiktoken";
import { estimateChatTokens, meteredChat, DEFAULT_PRICES } from "../src/ai/index.js";
import type { ChatMessageLike } from "../src/ai/index.js";
import { createMeter } from "../src/server/index.js";
import { percentile, table } from "./util.js";

const WORDS =
  "the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were her all she there would their we him been has when who will more no if out so said what up its about into than them can only other new some could time these two may then do first any my now such like our over man me even most made after also did many before must through back years where much your way well down should because each just those people how too little state good very make world still own see men work long get here between both life being under never day same another know while last might us great old year off come since against go came right used take three function const return await async import export interface class".split(" ");

/** Deterministic pseudo-random prose with some code and numbers, `bytes` long. */
function makeText(seed: number, bytes: number): string {
  let x = seed >>> 0 || 1;
  const rand = () => ((x = (x * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  const out: string[] = [];
  let size = 0;
  while (size < bytes) {
    const r = rand();
    const piece = r < 0.05 ? `\n\`\`\`ts\nconst v${Math.floor(r * 1e6)} = await fetch("/api/${WORDS[Math.floor(rand() * WORDS.length)]}");\n\`\`\`\n` : r < 0.1 ? ` ${Math.floor(rand() * 1e5)}.` : " " + WORDS[Math.floor(rand() * WORDS.length)];
    out.push(piece);
    size += piece.length;
  }
  return out.join("").slice(0, bytes);
}

function summarize(samples: number[]) {
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

function time(fn: () => unknown): number {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function benchEstimate(): Promise<Array<Record<string, string>>> {
  const KB100 = 100 * 1024;
  const texts = Array.from({ length: 12 }, (_, i) => makeText(i + 1, KB100));
  const tiktoken = getEncoding("o200k_base");
  const ours = (text: string) => estimateChatTokens([{ role: "user", content: text }] satisfies ChatMessageLike[], { model: "gpt-4o" });
  const theirs = (text: string) => tiktoken.encode(text, [], []).length + 3 + 3 + 1;

  // Same answer first: the comparison is only fair if both count the same tokens.
  for (const t of texts.slice(0, 3)) {
    if (ours(t) !== theirs(t)) throw new Error(`token counts differ: ${ours(t)} vs ${theirs(t)}`);
  }
  // Warm both (tables loaded, JIT settled), then interleave so drift affects both equally.
  for (const t of texts.slice(0, 4)) {
    ours(t);
    theirs(t);
  }
  const a: number[] = [];
  const b: number[] = [];
  for (let round = 0; round < 3; round++) {
    for (const t of texts) {
      a.push(time(() => ours(t)));
      b.push(time(() => theirs(t)));
    }
  }
  const sa = summarize(a);
  const sb = summarize(b);
  const mbps = (ms: number) => (KB100 / 1024 / 1024 / (ms / 1000)).toFixed(1);
  return [
    { case: "estimate 100 KB prompt (meterkit/ai, gpt-tokenizer o200k)", p50: `${sa.p50.toFixed(2)} ms`, p99: `${sa.p99.toFixed(2)} ms`, note: `${mbps(sa.p50)} MB/s` },
    { case: "same text, js-tiktoken o200k encode() directly", p50: `${sb.p50.toFixed(2)} ms`, p99: `${sb.p99.toFixed(2)} ms`, note: `${mbps(sb.p50)} MB/s; ours is ${(sb.p50 / sa.p50).toFixed(1)}× faster` },
  ];
}

async function benchWrapper(url: string): Promise<Array<Record<string, string>>> {
  {
    const meter = createMeter({
      database: url,
      schema: "meterkit_bench_ai",
      plans: { bench: { limits: { tokens: { quota: 1_000_000_000, unit: "tokens", period: "month" } } } },
      meters: { "llm.tokens": { counter: "tokens" } },
      prices: DEFAULT_PRICES,
      defaultPlan: "bench",
      sweepInterval: 0,
    });
    await meter.migrate();
    const userId = "bench_" + randomUUID();
    await meter.upsertSubscription({ userId, planId: "bench" });
    const messages: ChatMessageLike[] = [
      { role: "system", content: "You are a helpful assistant." },
      { role: "user", content: "Write a haiku about metering tokens." },
    ];
    const completion = {
      id: "x",
      object: "chat.completion",
      choices: [{ index: 0, message: { role: "assistant", content: "Tokens fall like rain" }, finish_reason: "stop" }],
      usage: { prompt_tokens: 25, completion_tokens: 6 },
    };
    const chunks = [
      { choices: [{ index: 0, delta: { content: "Tokens fall" } }] },
      { choices: [{ index: 0, delta: { content: " like rain" } }] },
      { choices: [], usage: { prompt_tokens: 25, completion_tokens: 6 } },
    ];
    // The instant model: answers at once, no I/O.
    const instant = async () => completion;
    async function* instantStream() {
      yield* chunks;
    }
    const N = 400;
    const bare: number[] = [];
    const plain: number[] = [];
    const streamed: number[] = [];
    for (let i = 0; i < N + 50; i++) {
      let t = performance.now();
      await instant();
      const tb = performance.now() - t;
      t = performance.now();
      await meteredChat(meter, userId, { model: "gpt-4o", messages, max_tokens: 256 }, instant);
      const tp = performance.now() - t;
      t = performance.now();
      const stream = await meteredChat(meter, userId, { model: "gpt-4o", messages, max_tokens: 256, stream: true }, () => instantStream());
      for await (const _ of stream) {
        // drain
      }
      const ts = performance.now() - t;
      if (i >= 50) {
        bare.push(tb);
        plain.push(tp);
        streamed.push(ts);
      }
    }
    await meter.close();
    const row = (name: string, s: number[]) => {
      const q = summarize(s);
      return { case: name, p50: `${q.p50.toFixed(2)} ms`, p99: `${q.p99.toFixed(2)} ms`, note: `${N} sequential calls` };
    };
    return [
      row("instant model alone", bare),
      row("meteredChat plain: estimate + reserve + call + commit", plain),
      row("meteredChat stream: same, committed at stream end", streamed),
    ];
  }
}

/** `npm run bench -- ai`: the database comes from the bench runner (fsync on). */
export default async function bench({ databaseUrl }: { databaseUrl: string }): Promise<void> {
  const rows = [...(await benchEstimate()), ...(await benchWrapper(databaseUrl))];
  table("meterkit/ai: token estimates and the wrapper's added latency", rows);
}
