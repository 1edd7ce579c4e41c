// `promptcot eval`: a checkpoint (or model) × benchmarks × k samples, generated through the workers and
// graded as each sample arrives (sample and verdict are one journaled unit in OUT/journal.sqlite, so an
// interrupted eval resumes where it stopped). Seeds depend only on (seed, benchmark, problem, sample):
// every checkpoint draws the same ones, so two evals compare pairwise.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { WorkerPool } from "../cluster/pool.js";
import { onInterrupt } from "../cluster/interrupt.js";
import { ConfigError } from "../config/errors.js";
import { ExperimentSchema, type Experiment } from "../config/schema.js";
import type { Problem } from "../data/problems.js";
import type { RunContext } from "../experiment/context.js";
import { Journal } from "../experiment/journal.js";
import { lockRunDir } from "../experiment/run-dir.js";
import { generateStage, type SampleRecord } from "../rollout/generate-stage.js";
import { MetricsSink, StageTimer } from "../telemetry/metrics.js";
import { createCodeGrader, type CodeGraderHandle } from "../verify/code/index.js";
import { createMathGrader, type FullMathGrader } from "../verify/math/grader.js";
import { type Benchmark, type BenchProblem, loadBenchmark, resolveBench } from "./benchmarks.js";
import type { ResultRow } from "./compare.js";
import { summarizeBenchmark, summaryMarkdown, type BenchSummary } from "./bench-summary.js";

export interface EvalOptions {
  checkpoint: string;
  benches: string[];
  k: number;
  temperature: number;
  topP: number;
  topK: number;
  maxTokens: number;
  out?: string;
  seed: number;
  workers: number;
  threads: number;
  device: string;
  dtype: "float32" | "bfloat16";
  decodeWidth: number;
  promptsPerRequest: number;
  limit?: number;
  system: string;
  instruction: string;
  chatTemplateKwargs: Record<string, unknown>;
  label?: string;
  graderTimeoutMs: number;
  /** Count a sample cut at max_tokens as correct when its answer is (default: never correct). */
  gradeTruncated: boolean;
}

/** One journaled sample with its verdict (the exported row plus what a resume and a report need). */
export interface EvalSampleRecord extends ResultRow {
  seed: number;
  verdict: string;
  reason?: string;
  text: string;
  prompt_opens_think: boolean;
}

export const DEFAULT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}.";

/** What the workers load: a model source, plus a run's checkpoint on top of the run's base model. */
export function resolveModel(checkpoint: string): { source: string; initCheckpoint?: string; label: string } {
  const label = checkpoint.replace(/\/+$/, "");
  const dir = resolve(checkpoint);
  if (!existsSync(dir)) {
    if (/[/\\]/.test(checkpoint) || checkpoint.startsWith(".")) {
      throw new ConfigError(`checkpoint ${dir} does not exist; give a checkpoint directory (runs/.../checkpoints/step-N), a Hugging Face model directory or a built-in model name`, dir);
    }
    return { source: checkpoint, label };
  }
  const runJson = resolve(dir, "..", "..", "run.json");
  if (/^step-\d+$/.test(dir.split("/").at(-1)!) && existsSync(runJson)) {
    const model = (JSON.parse(readFileSync(runJson, "utf8")) as { model?: { source?: string; path?: string } }).model;
    const source = model?.path ?? model?.source;
    if (!source) throw new ConfigError(`${runJson} names no model; cannot tell which base model ${dir} belongs to`, runJson);
    return { source, initCheckpoint: dir, label };
  }
  if (!existsSync(join(dir, "config.json"))) {
    throw new ConfigError(`${dir} is neither a run's checkpoint (checkpoints/step-N beside run.json) nor a Hugging Face model directory (no config.json)`, dir);
  }
  return { source: dir, label };
}

export const defaultOutDir = (label: string): string => join("evals", label.replace(/^\.+\/?/, "").replace(/[^A-Za-z0-9._-]+/g, "_") || "model");

/** An Experiment that carries the eval's settings, so generateStage runs unchanged. */
function evalConfig(o: EvalOptions, source: string): Experiment {
  return ExperimentSchema.parse({
    name: "eval",
    seed: o.seed,
    model: { source, dtype: o.dtype, device: o.device, chat_template_kwargs: o.chatTemplateKwargs, decode_width: o.decodeWidth },
    workers: { count: o.workers, threads: o.threads },
    data: { system_prompt: o.system, few_shot: [] },
    eval: {
      samples_per_prompt: o.k, temperature: o.temperature, top_p: o.topP, top_k: o.topK, max_tokens: o.maxTokens,
      prompts_per_request: o.promptsPerRequest,
    },
  });
}

const stageOf = (bench: string) => `bench:${bench}`;

function asProblem(p: BenchProblem, bench: string, instruction: string): Problem {
  const prompt = p.kind === "math" && instruction ? `${p.text}\n${instruction}` : p.text;
  return { id: p.id, prompt, answer: p.answer ?? "", source: bench };
}

export async function evalCommand(o: EvalOptions): Promise<number> {
  const model = resolveModel(o.checkpoint);
  const label = o.label ?? model.label;
  const benches = o.benches.map((b) => {
    const { name, path } = resolveBench(b);
    const bench = loadBenchmark(path, name);
    return o.limit ? { ...bench, problems: bench.problems.slice(0, o.limit) } : bench;
  });
  const out = resolve(o.out ?? defaultOutDir(label));
  mkdirSync(out, { recursive: true });
  const unlock = lockRunDir(out);
  const journal = new Journal(join(out, "journal.sqlite"));
  const log = (m: string) => process.stderr.write(`[promptcot eval] ${m}\n`);
  const removeInterrupt = onInterrupt(journal, unlock, log);
  let pool: WorkerPool | undefined;
  let math: FullMathGrader | undefined;
  let code: CodeGraderHandle | undefined;
  try {
    checkSettings(journal, out, o, model, benches);
    const cfg = evalConfig(o, model.source);
    pool = new WorkerPool(o.workers, {
      modelSource: model.source, dtype: o.dtype, device: o.device, trainableLayers: 0, decodeWidth: o.decodeWidth,
      seed: o.seed, threads: o.threads, startupTimeoutS: cfg.workers.startup_timeout_s, logDir: join(out, "logs"), runDir: out,
      trains: false, // a run's checkpoint carries the trainer's optimizer (for its trainable layers): eval needs none
    }, cfg.workers.max_restarts, journal);
    math = createMathGrader({ timeoutMs: o.graderTimeoutMs });
    const ctx: RunContext = {
      cfg, runDir: out, configDir: process.cwd(), journal, pool, grader: math, metrics: new MetricsSink(join(out, "metrics.jsonl")),
      timer: new StageTimer(), problems: { train: [], heldout: [] }, log,
    };
    const missing = benches.reduce((n, b) => n + b.problems.length * o.k, 0) - benches.reduce((n, b) => n + journal.count(stageOf(b.name)), 0);
    journal.event("eval_started", { pid: process.pid, checkpoint: label, samples_missing: missing });
    if (missing > 0) {
      log(`${label}: ${missing} sample(s) to generate; starting ${o.workers} worker(s)${model.initCheckpoint ? ` from ${model.initCheckpoint}` : ""}`);
      await pool.start(model.initCheckpoint);
    }
    const summaries: BenchSummary[] = [];
    for (const bench of benches) {
      if (bench.problems.some((p) => p.kind === "code")) code ??= createCodeGrader();
      await runBenchmark(ctx, bench, o, label, math, code);
      summaries.push(await summarizeBenchmark(readRecords(journal, bench), bench, o.k, o.seed, math));
      ctx.metrics.write({ kind: `eval/${bench.name}`, step: 0, ...flatSummary(summaries.at(-1)!) });
    }
    writeOutputs(out, journal, benches, summaries, label);
    journal.event("eval_finished", {});
    process.stdout.write(`${summaryMarkdown(label, summaries, o)}\nresults: ${join(out, "results.jsonl")}\n`);
    return 0;
  } finally {
    await pool?.stop();
    await math?.close();
    await code?.close();
    journal.close();
    unlock();
    removeInterrupt();
  }
}

async function runBenchmark(ctx: RunContext, bench: Benchmark, o: EvalOptions, label: string, math: FullMathGrader, code?: CodeGraderHandle): Promise<void> {
  const byId = new Map(bench.problems.map((p) => [p.id, p]));
  await generateStage(ctx, {
    label: `eval ${bench.name}`,
    stage: stageOf(bench.name),
    iteration: 0,
    problems: bench.problems.map((p) => asProblem(p, bench.name, o.instruction)),
    sampling: ctx.cfg.eval,
    pairedSeeds: true,
    toRows: async (problem, s, id) => {
      const result = await gradeSample(byId.get(problem.id)!, s, bench.name, label, o.gradeTruncated, math, code);
      return [{ id, stage: stageOf(bench.name), iteration: 0, result }];
    },
  });
}

async function gradeSample(p: BenchProblem, s: SampleRecord, bench: string, label: string, gradeTruncated: boolean, math: FullMathGrader, code?: CodeGraderHandle): Promise<EvalSampleRecord> {
  const ctx = { promptOpensThink: s.prompt_opens_think };
  const v = p.kind === "code"
    ? await code!.grade({ completion: s.text }, p.tests!, ctx).then((c) => ({ correct: c.verdict === "AC", verdict: c.verdict, extracted: null, reason: c.reason }))
    : await math.grade(s.text, p.answer!, ctx).then((m) => ({ correct: m.verdict === "correct", verdict: m.verdict, extracted: m.extracted, reason: m.reason }));
  // A sample cut at max_tokens is not counted correct unless asked: an unfinished solution's \boxed{} may be
  // an intermediate result (the verdict is kept, so the report can say how many that was).
  const correct = v.correct && (gradeTruncated || s.finish_reason !== "length");
  return {
    benchmark: bench, problem_id: p.id, sample_idx: s.sample, correct, extracted: v.extracted,
    response_tokens: s.token_ids.length, finish_reason: s.finish_reason, checkpoint: label,
    seed: s.seed, verdict: v.verdict, ...(v.reason ? { reason: v.reason } : {}), text: s.text, prompt_opens_think: s.prompt_opens_think,
  };
}

function readRecords(journal: Journal, bench: Benchmark): EvalSampleRecord[] {
  return journal.list<EvalSampleRecord>(stageOf(bench.name), 0).map((r) => r.result);
}

/**
 * An eval directory holds one checkpoint's samples under one set of settings: resuming with another
 * model, other sampling or changed problems would mix samples that are not comparable, so it is refused.
 */
function checkSettings(journal: Journal, out: string, o: EvalOptions, model: { source: string; initCheckpoint?: string }, benches: Benchmark[]): void {
  const settings = JSON.stringify({
    model: model.initCheckpoint ?? model.source, k: o.k, temperature: o.temperature, top_p: o.topP, top_k: o.topK, max_tokens: o.maxTokens,
    seed: o.seed, system: o.system, instruction: o.instruction, chat_template_kwargs: o.chatTemplateKwargs, decode_width: o.decodeWidth, dtype: o.dtype, grade_truncated: o.gradeTruncated,
  });
  const was = journal.getMeta("eval.settings");
  if (was && was !== settings) {
    const [a, b] = [JSON.parse(was) as Record<string, unknown>, JSON.parse(settings) as Record<string, unknown>];
    const changed = Object.keys(b).filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k])).map((k) => `${k}: ${JSON.stringify(a[k])} -> ${JSON.stringify(b[k])}`);
    throw new ConfigError(`this eval directory holds samples drawn with other settings (${changed.join("; ")}); use another --out`, out);
  }
  journal.setMeta("eval.settings", settings);
  for (const b of benches) {
    const fp = createHash("sha256").update(JSON.stringify(b.problems)).digest("hex");
    const key = `bench.${b.name}`;
    const had = journal.getMeta(key);
    if (had && had !== fp) throw new ConfigError(`benchmark '${b.name}' changed since its samples in this eval directory were drawn (other problems, answers or --limit); use another --out`, out);
    journal.setMeta(key, fp);
  }
}

function flatSummary(s: BenchSummary): Record<string, number> {
  const out: Record<string, number> = { problems: s.problems, avg_at_k: s.avg.value, avg_ci_lo: s.avg.ci.lo, avg_ci_hi: s.avg.ci.hi };
  for (const p of s.pass_at) out[`pass_at_${p.k}`] = p.value;
  if (s.maj) out.maj_at_k = s.maj.value;
  return out;
}

function writeAtomic(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

/** results.jsonl (the exported rows, every benchmark), summary.json and summary.md, each rewritten whole. */
function writeOutputs(out: string, journal: Journal, benches: Benchmark[], summaries: BenchSummary[], label: string): void {
  const lines: string[] = [];
  for (const b of benches) {
    for (const r of readRecords(journal, b)) {
      const row = { benchmark: r.benchmark, problem_id: r.problem_id, sample_idx: r.sample_idx, correct: r.correct, extracted: r.extracted,
        response_tokens: r.response_tokens, finish_reason: r.finish_reason, checkpoint: label, verdict: r.verdict, seed: r.seed };
      lines.push(JSON.stringify(row));
    }
  }
  writeAtomic(join(out, "results.jsonl"), lines.length ? `${lines.join("\n")}\n` : "");
  writeAtomic(join(out, "summary.json"), `${JSON.stringify({ checkpoint: label, benchmarks: summaries }, null, 2)}\n`);
  writeAtomic(join(out, "summary.md"), summaryMarkdown(label, summaries));
}
