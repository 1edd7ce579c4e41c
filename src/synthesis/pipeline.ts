// The synthesis run (`task: synthesis`), one screen: seeds → cold start → warm start → EM × N → generate →
// filters → dedup → artifacts and report. Every stage reads and writes the journal, so running the same
// command again resumes where the last one stopped.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { restartPolicyOf, WorkerPool } from "../cluster/pool.js";
import type { WorkerSpec } from "../cluster/local-launcher.js";
import { onInterrupt } from "../cluster/interrupt.js";
import { pythonPath } from "../cluster/python-env.js";
import { ConfigError } from "../config/errors.js";
import type { Experiment } from "../config/schema.js";
import { Journal } from "../experiment/journal.js";
import { checkSameConfig, defaultRunDir, lockRunDir, resolvedYaml } from "../experiment/run-dir.js";
import { MetricsSink, StageTimer } from "../telemetry/metrics.js";
import type { SftUpdateRecord } from "../train/sft.js";
import { annotateStage, annotationCounts, seedStage } from "./cold-start.js";
import type { Role, SynthContext } from "./context.js";
import { emLoop, updateStage, warmStart } from "./em.js";
import { readTrack } from "./em-track.js";
import { conceptPool, generationStage, screenStage } from "./generate.js";
import { planLines, renderSynthesisReport, writeProblems } from "./outputs.js";

export interface SynthesisRunOptions {
  runDir?: string;
  dryRun?: boolean;
}

export async function synthesisCommand(file: string, cfg: Experiment, opts: SynthesisRunOptions, explicit?: Record<string, unknown>): Promise<number> {
  const runDir = opts.runDir ? resolve(opts.runDir) : defaultRunDir(cfg, explicit);
  if (opts.dryRun) {
    process.stdout.write(`# resolved config\n${resolvedYaml(cfg)}\n# plan (dry run: nothing started, nothing written)\n${planLines(cfg, runDir).join("\n")}\n`);
    return 0;
  }
  pythonPath(); // fail early, with the fix, when the environment is missing
  const t0 = performance.now();
  const resumed = openRunDir(runDir, cfg);
  const unlock = lockRunDir(runDir);
  const journal = new Journal(join(runDir, "journal.sqlite"));
  const log = (m: string) => process.stderr.write(`[promptcot] ${m}\n`);
  log(`${resumed ? "resuming" : "starting"} synthesis run ${runDir}`);
  journal.event(resumed ? "run_resumed" : "run_started", { pid: process.pid, task: "synthesis" });
  const removeInterrupt = onInterrupt(journal, unlock, log);
  const pools = { rationale: rolePool(cfg, runDir, "rationale", journal), prompt: rolePool(cfg, runDir, "prompt", journal) };
  const ctx: SynthContext = { cfg, runDir, configDir: dirname(resolve(file)), journal, pools, metrics: new MetricsSink(join(runDir, "metrics.jsonl")), timer: new StageTimer(), log };
  try {
    await ctx.timer.time("worker startup", () => Promise.all((["rationale", "prompt"] as const).map((r) => startRole(ctx, r))));
    const report = await synthesize(ctx, resumed, t0);
    journal.event("run_finished", {});
    process.stdout.write(`\n${report}\n\nreport: ${join(runDir, "report.md")}\nproblems: ${join(runDir, "artifacts", "synthesis", "problems.jsonl")}\n`);
    return 0;
  } finally {
    await Promise.all([pools.rationale.stop(), pools.prompt.stop()]);
    journal.close();
    unlock();
    removeInterrupt();
  }
}

/** The stages in order; each returns at once when the journal says it is done. */
async function synthesize(ctx: SynthContext, resumed: boolean, t0: number): Promise<string> {
  const { timer } = ctx;
  const seeds = await seedStage(ctx);
  await timer.time("cold start", () => withAnnotator(ctx, (pool) => annotateStage(ctx, pool)));
  ctx.log(`cold start: ${seeds} seeds; annotations by outcome ${JSON.stringify(annotationCounts(ctx))}`);
  await timer.time("warm start", () => warmStart(ctx));
  const em = await emLoop(ctx);
  const pool = await conceptPool(ctx);
  await timer.time("generate", () => generationStage(ctx, pool));
  await timer.time("filters + dedup", () => screenStage(ctx));
  const kept = writeProblems(ctx);
  return await renderSynthesisReport(ctx, { em, emTrack: readTrack(ctx), pool, kept, resumed, wallSeconds: (performance.now() - t0) / 1000 });
}

/** The annotator: the prompt-role worker with base weights, or its own model for the duration of cold start. */
async function withAnnotator(ctx: SynthContext, fn: (pool: WorkerPool) => Promise<void>): Promise<void> {
  const source = ctx.cfg.synthesis.annotator.source;
  if (!source) return fn(ctx.pools.prompt);
  const pool = new WorkerPool(1, { ...specOf(ctx.cfg, ctx.runDir, "prompt"), modelSource: source }, restartPolicyOf(ctx.cfg.workers), ctx.journal);
  await pool.start();
  try {
    await fn(pool);
  } finally {
    await pool.stop();
  }
}

function specOf(cfg: Experiment, runDir: string, role: Role): WorkerSpec {
  const m = { ...cfg.model, ...stripUndefined(role === "rationale" ? cfg.synthesis.rationale_model : cfg.synthesis.prompt_model) };
  return {
    modelSource: m.source, dtype: m.dtype, device: m.device, trainableLayers: m.trainable_layers, decodeWidth: m.decode_width,
    seed: cfg.seed, threads: cfg.workers.threads, startupTimeoutS: cfg.workers.startup_timeout_s, logDir: join(runDir, "logs", role), runDir,
    activationCheckpointing: cfg.parallel.activation_checkpointing,
  };
}

const stripUndefined = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

function rolePool(cfg: Experiment, runDir: string, role: Role, journal: Journal): WorkerPool {
  return new WorkerPool(cfg.workers.count, specOf(cfg, runDir, role), restartPolicyOf(cfg.workers), journal);
}

/** Starts a role's workers from its newest journaled update (or the base model). */
async function startRole(ctx: SynthContext, role: Role): Promise<void> {
  const last = ctx.journal.countsByStage().filter((r) => r.stage === updateStage(role)).at(-1);
  const u = last ? ctx.journal.get<SftUpdateRecord>(`it${String(last.iteration).padStart(3, "0")}/${updateStage(role)}`) : undefined;
  ctx.log(`starting ${role} worker(s) from ${u?.checkpoint ?? "the base model"}`);
  await ctx.pools[role].start(u?.checkpoint, u?.global_step ?? 0);
}

/** New run: writes the resolved config; existing run: the same config resumes, any other is refused. */
function openRunDir(dir: string, cfg: Experiment): boolean {
  const file = join(dir, "config.resolved.yaml");
  if (existsSync(file)) {
    checkSameConfig(dir, cfg);
    return true;
  }
  for (const sub of ["artifacts/synthesis", "checkpoints", "logs"]) mkdirSync(join(dir, sub), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, resolvedYaml(cfg));
  renameSync(tmp, file);
  return false;
}
