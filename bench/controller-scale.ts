// The controller's own work on one synthetic self-play iteration at a fraction of PromptCoT 2.0's shape
// (385k samples = 48,113 prompts x 8, with 16k-token completions), with no model: samples are written
// through the journal as the rollout stage does, then the real grade stage (a fake verdict), pair stage and
// artifacts export run over them. Each (data plane, size) runs in its own child process, so its peak RSS
// (getrusage maxrss) is its own. Token streams are windows of a real tokenized corpus (uniform random ids
// barely compress, real streams do): bench/make-token-corpus.py writes it.
//
//   npx tsx bench/controller-scale.ts --corpus /tmp/corpus.json --out /tmp/cs [--runs plane:fraction,...]
// Each run deletes its run directory when done (the 1/10 shard run needs ~4 GB free while it runs, with
// its samples.jsonl export). Results and the machine they came from: docs/DATA_PLANE.md.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ExperimentSchema } from "../src/config/schema.js";
import type { Problem } from "../src/data/problems.js";
import { exportIteration } from "../src/experiment/artifacts.js";
import type { RunContext } from "../src/experiment/context.js";
import { unitId } from "../src/experiment/ids.js";
import { Journal, type DataPlane, type UnitRow } from "../src/experiment/journal.js";
import type { SampleRecord } from "../src/rollout/generate-stage.js";
import { gradeStage, pairsStage } from "../src/selfplay/stages.js";
import type { MathGrader, MathVerdict } from "../src/verify/types.js";

const PAPER_SAMPLES = 385_000;
const TOKENS = 16_000;
const PER_PROMPT = 8;
const PROMPT_TOKENS = 200;

interface Result {
  plane: DataPlane;
  fraction: number;
  samples: number;
  tokens: number;
  write_s: number;
  write_mtok_s: number;
  grade_s: number;
  pairs_s: number;
  export_s: number;
  /** CPU seconds (user + system) of this process per pass: the wall times above include a shared CPU's waits. */
  write_cpu_s: number;
  grade_cpu_s: number;
  pairs_cpu_s: number;
  export_cpu_s: number;
  peak_rss_mb: number;
  disk_mb: number;
  bytes_per_token: number;
  pairs: number;
}

/** Deterministic xorshift, so both planes see the same samples. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => ((s ^= s << 13), (s ^= s >>> 17), (s ^= s << 5), (s >>> 0) / 2 ** 32);
}

function sampleAt(corpus: [number, string][], rand: () => number, n: number): { ids: number[]; text: string } {
  const off = Math.floor(rand() * (corpus.length - n));
  const w = corpus.slice(off, off + n);
  return { ids: w.map((t) => t[0]), text: w.map((t) => t[1]).join("") };
}

/** Correct when the completion's last character code is even: reads the text as a grader does, no model. */
const fakeGrader: MathGrader = {
  grade: async (completion: string): Promise<MathVerdict> => ({
    verdict: completion.charCodeAt(completion.length - 1) % 2 === 0 ? "correct" : "incorrect",
    extracted: completion.slice(-8),
  }),
} as unknown as MathGrader;

function cpuSeconds(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1e6;
}

function dirBytes(dir: string): number {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .reduce((n, e) => n + statSync(join(e.parentPath, e.name)).size, 0);
}

async function child(plane: DataPlane, fraction: number, corpusPath: string, out: string): Promise<Result> {
  const corpus = (JSON.parse(readFileSync(corpusPath, "utf8")) as { tokens: [number, string][] }).tokens;
  const runDir = join(out, `${plane}-${fraction}`);
  rmSync(runDir, { recursive: true, force: true });
  mkdirSync(runDir, { recursive: true });
  const journal = new Journal(join(runDir, "journal.sqlite"), { dataPlane: plane });
  const prompts = Math.round((PAPER_SAMPLES * fraction) / PER_PROMPT);
  const problems: Problem[] = Array.from({ length: prompts }, (_, i) => ({ id: `t${String(i).padStart(6, "0")}`, prompt: `problem ${i}`, answer: "0", source: "bench" }));
  const rand = rng(12345);
  let writeMs = 0;
  let writeCpu = 0;
  for (const p of problems) {
    const prompt = sampleAt(corpus, rand, PROMPT_TOKENS).ids;
    const rows: UnitRow[] = Array.from({ length: PER_PROMPT }, (_, s) => {
      const { ids, text } = sampleAt(corpus, rand, TOKENS);
      const result: SampleRecord = { prompt_id: p.id, sample: s, seed: s, text, token_ids: ids, prompt_token_ids: prompt, finish_reason: "stop", prompt_opens_think: false };
      return { id: unitId(1, "rollout", p.id, s), stage: "rollout", iteration: 1, result };
    });
    const t = performance.now();
    const c = process.cpuUsage();
    journal.record(rows); // one prompt's samples per call: one fsync per 8 samples on the shard plane
    writeMs += performance.now() - t;
    writeCpu += cpuSeconds(c);
  }
  const cfg = ExperimentSchema.parse({ name: "bench", model: { source: "tiny-random-llama" }, data: { few_shot: [] } });
  const ctx = {
    cfg, runDir, configDir: runDir, journal, grader: fakeGrader, problems: { train: problems, heldout: [] },
    metrics: { write: () => {} }, log: () => {},
  } as unknown as RunContext;
  const time = async (f: () => unknown): Promise<[number, number]> => {
    const [t, c] = [performance.now(), process.cpuUsage()];
    await f();
    return [(performance.now() - t) / 1000, cpuSeconds(c)];
  };
  const [grade_s, grade_cpu_s] = await time(() => gradeStage(ctx, 1));
  let pairs = 0;
  const [pairs_s, pairs_cpu_s] = await time(async () => (pairs = (await pairsStage(ctx, 1)).length));
  const [export_s, export_cpu_s] = await time(() => exportIteration(ctx, 1));
  const samples = journal.count("rollout", 1);
  journal.close();
  const artifacts = dirBytes(join(runDir, "artifacts"));
  const disk = dirBytes(runDir) - artifacts;
  const tokens = samples * TOKENS;
  const r: Result = {
    plane, fraction, samples, tokens, write_s: writeMs / 1000, write_mtok_s: tokens / 1e6 / (writeMs / 1000), grade_s, pairs_s, export_s,
    write_cpu_s: writeCpu, grade_cpu_s, pairs_cpu_s, export_cpu_s, peak_rss_mb: process.resourceUsage().maxRSS / 1024, disk_mb: disk / 2 ** 20, bytes_per_token: disk / tokens, pairs,
  };
  rmSync(runDir, { recursive: true, force: true });
  return r;
}

function table(rs: Result[]): string {
  const head = "| plane | size | samples | tokens | write s wall/cpu (Mtok/s wall) | grade s wall/cpu | pairs s wall/cpu | export s wall/cpu | peak RSS MB | disk MB | bytes/token |";
  const f = (w: number, c: number) => `${w.toFixed(1)} / ${c.toFixed(1)}`;
  const rows = rs.map((r) =>
    `| ${r.plane} | 1/${Math.round(1 / r.fraction)} | ${r.samples} | ${(r.tokens / 1e6).toFixed(0)}M | ${f(r.write_s, r.write_cpu_s)} (${r.write_mtok_s.toFixed(2)}) | ` +
    `${f(r.grade_s, r.grade_cpu_s)} | ${f(r.pairs_s, r.pairs_cpu_s)} | ${f(r.export_s, r.export_cpu_s)} | ${r.peak_rss_mb.toFixed(0)} | ${r.disk_mb.toFixed(0)} | ${r.bytes_per_token.toFixed(2)} |`);
  return [head, `|${"---|".repeat(11)}`, ...rows].join("\n");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { corpus: { type: "string" }, out: { type: "string" }, runs: { type: "string" }, child: { type: "string" } },
  });
  if (!values.corpus || !values.out) throw new Error("usage: controller-scale.ts --corpus CORPUS.json --out DIR [--runs plane:fraction,...]");
  if (values.child) {
    const [plane, fraction] = values.child.split(":");
    process.stdout.write(JSON.stringify(await child(plane as DataPlane, Number(fraction), values.corpus, values.out)) + "\n");
    return;
  }
  const runs = (values.runs ?? "inline:0.0005,inline:0.002,inline:0.01,shards:0.0005,shards:0.002,shards:0.01,shards:0.1").split(",");
  const results: Result[] = [];
  for (const run of runs) {
    if (!/^(inline|shards):[0-9.]+$/.test(run)) throw new Error(`--runs: '${run}' is not plane:fraction (plane inline or shards)`);
    const out = execFileSync(process.execPath, ["--import", "tsx", process.argv[1]!, "--corpus", values.corpus, "--out", values.out, "--child", run], {
      encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 1 << 20,
    });
    results.push(JSON.parse(out.trim().split("\n").at(-1)!) as Result);
    console.error(JSON.stringify(results.at(-1)));
  }
  console.log(table(results));
}

await main();
