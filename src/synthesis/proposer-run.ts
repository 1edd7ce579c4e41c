// Self-play on synthesized problems (`task: selfplay` with `proposer.enabled`): the prompt model (its own
// worker) is warm-started on the seeds, then the self-play loop runs with a problem source that, per
// iteration, closes the previous one (pass rates → proposer pairs → proposer DPO, or R-Zero rewards → proposer
// GRPO) and synthesizes the next
// problems (synthesize → screen → teacher references). With proposer.twin a twin policy is then trained by
// the same self-play on as many seed problems per iteration, in <run>/twin (its own journal, so resume
// covers it), and both are compared on the same held-out set with the paired statistics.
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { restartPolicyOf, WorkerPool } from "../cluster/pool.js";
import type { WorkerSpec } from "../cluster/local-launcher.js";
import type { Experiment } from "../config/schema.js";
import type { Problem } from "../data/problems.js";
import type { RunContext } from "../experiment/context.js";
import { shuffled, unitId, unitSeed } from "../experiment/ids.js";
import { Journal } from "../experiment/journal.js";
import type { EvalSummary } from "../eval/heldout.js";
import { engineGenerator, workerGenerator } from "../rollout/engine-generator.js";
import { localModelSource, roleEngineType, roleVllmEngine } from "../rollout/from-config.js";
import { PolicyEngine } from "../rollout/policy-engine.js";
import { RoleEngine } from "../rollout/role-engine.js";
import type { VllmEngine } from "../rollout/vllm.js";
import { selfPlay, type IterationResult, type ProblemSource } from "../selfplay/loop.js";
import { MetricsSink, StageTimer } from "../telemetry/metrics.js";
import { latestUpdate } from "../train/dpo.js";
import { readSeeds } from "./proposer-seeds.js";
import {
  latestProposerUpdate, P_PROBLEMS, passRateStage, problemsStage, proposerGrpoUpdateStage, proposerPairsStage, proposerUpdateStage, warmStart,
  type IterationProblems, type ProposerContext,
} from "./proposer-stages.js";
import { renderProposerReport, type TwinResult } from "./proposer-report.js";
import type { Generator } from "./teacher.js";

export interface SelfPlayResult {
  before: EvalSummary;
  iterations: IterationResult[];
  /** Sections for report.md after the self-play table. */
  report: string;
}

type RoleModel = { source?: string | undefined; trainable_layers?: number | undefined; decode_width?: number | undefined };

function specOf(ctx: RunContext, role: RoleModel, logDir: string): WorkerSpec {
  const m = ctx.cfg.model;
  return {
    modelSource: localModelSource(ctx.configDir, role.source ?? m.source), dtype: m.dtype, device: m.device, trainableLayers: role.trainable_layers ?? m.trainable_layers,
    decodeWidth: role.decode_width ?? m.decode_width, seed: ctx.cfg.seed, threads: ctx.cfg.workers.threads, startupTimeoutS: ctx.cfg.workers.startup_timeout_s,
    logDir, runDir: ctx.runDir, activationCheckpointing: ctx.cfg.parallel.activation_checkpointing,
  };
}

/** The teacher: a worker of its own model, managed vLLM servers on it, or a user's Generator factory ("file.ts#export", called with the config dir). */
async function teacherOf(ctx: RunContext): Promise<{ gen: Generator; pool?: WorkerPool; engine?: VllmEngine }> {
  const t = ctx.cfg.proposer.teacher;
  const source = t.source ?? ctx.cfg.model.source;
  const hash = source.indexOf("#");
  if (hash > 0 && /\.[cm]?[jt]s$/.test(source.slice(0, hash))) {
    const file = resolve(ctx.configDir, source.slice(0, hash));
    const make = ((await import(pathToFileURL(file).href)) as Record<string, unknown>)[source.slice(hash + 1)];
    if (typeof make !== "function") throw new Error(`proposer.teacher.source '${source}': ${file} has no exported function '${source.slice(hash + 1)}'`);
    return { gen: (make as (dir: string) => Generator)(ctx.configDir) };
  }
  if (roleEngineType(ctx.cfg, t) === "vllm") {
    // frozen: the servers keep the teacher's own weights for the whole run (they apply its chat template)
    const engine = await roleVllmEngine(ctx.cfg, ctx.runDir, ctx.log, "teacher", localModelSource(ctx.configDir, source), t, "chat");
    return { gen: engineGenerator(engine), engine };
  }
  const pool = new WorkerPool(1, specOf(ctx, { source }, join(ctx.runDir, "logs", "teacher")), restartPolicyOf(ctx.cfg.workers), ctx.journal);
  return { gen: workerGenerator(pool, source), pool };
}

/** The prompt model's generation on managed vLLM servers that follow its pool's checkpoints; undefined: its worker generates. */
async function promptEngineOf(ctx: RunContext, pool: WorkerPool): Promise<RoleEngine | undefined> {
  const p = ctx.cfg.proposer.prompt_model;
  if (roleEngineType(ctx.cfg, p) !== "vllm") return undefined;
  const engine = await roleVllmEngine(ctx.cfg, ctx.runDir, ctx.log, "prompt", localModelSource(ctx.configDir, p.source ?? ctx.cfg.model.source), p, "completions");
  return new RoleEngine(new PolicyEngine(engine), pool, ctx);
}

const iterationProblems = (ctx: RunContext, it: number) => ctx.journal.get<IterationProblems>(unitId(it, P_PROBLEMS))!;

/** After the policy's iteration `it`: pass rates, proposer pairs and yield, and (unless last) p's update. */
async function closeIteration(ctx: RunContext, px: ProposerContext, it: number, update: boolean): Promise<void> {
  const itx: RunContext = { ...ctx, problems: { ...ctx.problems, train: iterationProblems(ctx, it).problems } };
  passRateStage(itx, it);
  const fresh = !ctx.journal.has(unitId(it, "proposer/pairs"));
  const rec = await proposerPairsStage(ctx, it);
  if (fresh) ctx.metrics.write({ iteration: it, kind: "proposer", ...iterationProblems(ctx, it).counts, yield: rec.yield, proposer_pairs: rec.pairs.length, by_reason: rec.by_reason });
  ctx.log(`iteration ${it}: learnable yield ${rec.yield.learnable}/${rec.yield.total}; ${rec.pairs.length} proposer pairs ${JSON.stringify(rec.by_reason)}`);
  if (!update) return;
  const grpo = ctx.cfg.proposer.algorithm === "grpo";
  await ctx.timer.time("proposer update", () => (grpo ? proposerGrpoUpdateStage(ctx, px, it) : proposerUpdateStage(ctx, px, it, rec.pairs)));
}

function synthesizedSource(px: ProposerContext): ProblemSource {
  return async (ctx, it) => {
    if (it > 1) await closeIteration(ctx, px, it - 1, true);
    return problemsStage(ctx, px, it);
  };
}

export async function proposerRegime(ctx: RunContext): Promise<SelfPlayResult> {
  const { cfg } = ctx;
  const seeds = readSeeds(cfg, ctx.configDir);
  const prompt = new WorkerPool(1, specOf(ctx, cfg.proposer.prompt_model, join(ctx.runDir, "logs", "prompt")), restartPolicyOf(cfg.workers), ctx.journal);
  let teacher: Awaited<ReturnType<typeof teacherOf>> | undefined;
  let promptEngine: RoleEngine | undefined;
  let main: Omit<SelfPlayResult, "report">;
  try {
    const last = latestProposerUpdate(ctx);
    // the role servers start together (each takes about a minute on CPU); one failing stops the other
    const started = await ctx.timer.time("engine startup", () => Promise.allSettled([teacherOf(ctx), promptEngineOf(ctx, prompt)]));
    if (started[0].status === "fulfilled") teacher = started[0].value;
    if (started[1].status === "fulfilled") promptEngine = started[1].value;
    for (const r of started) if (r.status === "rejected") throw r.reason;
    if (!teacher) throw new Error("teacher not started");
    ctx.log(`starting the prompt model from ${last?.checkpoint ?? "the base model"}${teacher.pool ? " and the teacher" : ""}`);
    await ctx.timer.time("worker startup", () => Promise.all([prompt.start(last?.checkpoint, last?.global_step ?? 0), teacher!.pool?.start()]));
    const px: ProposerContext = { pool: prompt, teacher: teacher.gen, seeds, ...(promptEngine ? { engine: promptEngine } : {}) };
    await ctx.timer.time("proposer warm start", () => warmStart(ctx, px));
    main = await selfPlay(ctx, synthesizedSource(px));
    await closeIteration(ctx, px, cfg.iterations, false); // nothing is synthesized after the last iteration
  } finally {
    await Promise.all([prompt.stop(), teacher?.pool?.stop(), teacher?.engine?.close(), promptEngine?.close()]);
  }
  const counts = main.iterations.map((r) => iterationProblems(ctx, r.iteration).problems.length);
  const twin = cfg.proposer.twin ? await ctx.timer.time("twin", () => twinRun(ctx, counts)) : undefined;
  return { ...main, report: renderProposerReport(ctx, main, twin) };
}

/** The twin's problems: as many seed problems as the synthesized run rolled out in that iteration, in a seeded order. */
const twinSource = (counts: number[]): ProblemSource => async (ctx, it) =>
  shuffled(ctx.problems.train, unitSeed(ctx.cfg.seed, "twin", it)).slice(0, counts[it - 1] ?? 0);

async function twinRun(ctx: RunContext, counts: number[]): Promise<TwinResult> {
  const dir = join(ctx.runDir, "twin");
  for (const sub of ["checkpoints", "logs"]) mkdirSync(join(dir, sub), { recursive: true });
  const journal = new Journal(join(dir, "journal.sqlite"));
  const pool = new WorkerPool(ctx.cfg.workers.count, specOf(ctx, {}, join(dir, "logs")), restartPolicyOf(ctx.cfg.workers), journal);
  const tctx: RunContext = { ...ctx, runDir: dir, journal, pool, metrics: new MetricsSink(join(dir, "metrics.jsonl")), timer: new StageTimer(), log: (m) => ctx.log(`twin: ${m}`) };
  try {
    const latest = latestUpdate(journal);
    tctx.log(`starting the twin policy from ${latest?.checkpoint ?? "the base model"} (${counts.join(", ")} seed problems per iteration)`);
    await pool.start(latest?.checkpoint, latest?.global_step ?? 0);
    const r = await selfPlay(tctx, twinSource(counts));
    return { ...r, counts, dir };
  } finally {
    await pool.stop();
    journal.close();
  }
}

/** The plan lines the proposer adds to `--dry-run`. */
export function proposerPlanLines(cfg: Experiment): string[] {
  const p = cfg.proposer;
  const g = p.generate;
  return [
    `proposer: prompt model ${p.prompt_model.source ?? cfg.model.source} (own worker${roleEngineType(cfg, p.prompt_model) === "vllm" ? "; generates on managed vLLM servers whose weights follow its checkpoints" : ""}), warm start on seeds (${p.seeds_path ?? cfg.data.train_path}; ${p.warm_start.epochs} epochs, lr ${p.warm_start.learning_rate})`,
    `teacher: ${p.teacher.source ?? cfg.model.source}${roleEngineType(cfg, p.teacher) === "vllm" && !/#/.test(p.teacher.source ?? "") ? " on managed vLLM servers (frozen)" : ""}, ${p.teacher.samples} samples per problem (T=${p.teacher.sampling.temperature}, ≤${p.teacher.sampling.max_tokens} tokens), min agreement ${p.teacher.min_agreement}`,
    ...Array.from({ length: cfg.iterations }, (_, i) =>
      `iteration ${i + 1} problems: ${g.sets} concept sets × ${g.samples_per_set} problems (≤${g.sampling.max_tokens} tokens, T=${g.sampling.temperature}) → filters → dedup (Jaccard ${p.dedup.threshold}, against ${p.dedup.against_seeds ? "the seeds and " : ""}earlier iterations) and decontamination (held-out) → teacher vote` +
        (i + 1 < cfg.iterations ? `; after the iteration: pass rates → ${p.algorithm === "grpo" ? `R-Zero rewards (min(p, 1 − p) − ${p.reward.repetition_weight} × repetition) → advantages per concept set (${cfg.train.grpo.advantage}) → proposer GRPO (lr ${p.train.learning_rate})` : `proposer pairs (band (${p.pairs.min_pass_rate}, ${p.pairs.max_pass_rate}]) → proposer DPO (lr ${p.train.learning_rate}, β ${p.train.beta})`}` : "; after the iteration: pass rates, yield (no proposer update: nothing follows)"),
    ),
    ...(p.twin ? [`twin: the same self-play on as many seed problems per iteration (<run>/twin), compared on held-out with the paired statistics`] : []),
  ];
}
