// `promptcot run`: resolve the config, open (or resume) the run, start workers, run self-play, report.
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { restartPolicyOf, WorkerPool } from "../cluster/pool.js";
import { launcherFor } from "../cluster/launcher.js";
import { onInterrupt } from "../cluster/interrupt.js";
import { checkPlacement, workersLine } from "../cluster/process-placement.js";
import { setMinTokensPerS } from "../rpc/deadlines.js";
import { pythonPath } from "../cluster/python-env.js";
import { loadExperiment } from "../config/load.js";
import { dryRunElsewhere, missingInputs, placementSection } from "./dry-run-plan.js";
import { firstPromptSection } from "./first-prompt.js";
import { ConfigError } from "../config/errors.js";
import type { Experiment } from "../config/schema.js";
import { loadProblems } from "../data/problems.js";
import { exportIteration } from "../experiment/artifacts.js";
import type { RunContext } from "../experiment/context.js";
import { Journal } from "../experiment/journal.js";
import { checkRunDir, configDiff, defaultRunDir, lockRunDir, prepareRunDir, resolvedYaml } from "../experiment/run-dir.js";
import { identityLines, runIdentity, type RunIdentity } from "../experiment/run-identity.js";
import { renderReport, writeReport } from "../eval/report.js";
import { selfPlay, type IterationResult } from "../selfplay/loop.js";
import type { EvalSummary } from "../eval/heldout.js";
import { readSftData, sftPlanText, sftRegime } from "../train/sft-regime.js";
import { synthesisCommand } from "../synthesis/pipeline.js";
import { proposerPlanLines, proposerRegime } from "../synthesis/proposer-run.js";
import { MetricsSink, StageTimer } from "../telemetry/metrics.js";
import { policyEngineFromConfig } from "../rollout/from-config.js";
import { engineGpuSlices, hostGpuIds, workerDeviceOffset } from "../rollout/vllm-placement.js";
import { refusalError, reportRefusals, runRefusals } from "./run-refusals.js";
import type { PolicyEngine } from "../rollout/policy-engine.js";
import { latestUpdate } from "../train/dpo.js";
import { createMathGraderByName, createRunCodeGrader } from "../verify/registry.js";

export interface RunOptions {
  set: string[];
  runDir?: string;
  dryRun?: boolean;
}

export function planText(cfg: Experiment, runDir: string): string {
  if (cfg.task === "sft") return sftPlanText(cfg, runDir);
  const n = cfg.data.train_size;
  const k = cfg.rollout.samples_per_prompt;
  const he = cfg.data.heldout_size * cfg.eval.samples_per_prompt;
  return [
    `run directory: ${runDir}`,
    ...(cfg.proposer.enabled ? proposerPlanLines(cfg) : []),
    workersLine(cfg),
    ...(cfg.engine.type === "llama_cpp" || cfg.engine.type === "vllm" ? [engineLine(cfg)] : []),
    `eval before training: ${cfg.data.heldout_size} held-out problems × ${cfg.eval.samples_per_prompt} samples = ${he} generations`,
    ...Array.from({ length: cfg.iterations }, (_, i) =>
      `iteration ${i + 1}: rollout ${n} prompts × ${k} samples (≤${cfg.rollout.max_tokens} tokens, T=${cfg.rollout.temperature}) → grade (${cfg.grader.math}) ` +
        `→ ${updatePlan(cfg)} → checkpoint → sync` +
        (i + 1 === cfg.iterations || (cfg.eval_every > 0 && (i + 1) % cfg.eval_every === 0) ? ` → eval (${he} generations)` : ""),
    ),
  ].join("\n");
}

function engineLine(cfg: Experiment): string {
  if (cfg.engine.type === "vllm") {
    const v = cfg.engine.vllm;
    if (cfg.engine.base_url) return `rollout engine: an external vLLM at ${cfg.engine.base_url} (refused for self-play: its weights cannot follow the policy)`;
    return `rollout engine: vLLM, ${v.engines} managed server(s) (tensor parallel ${v.tensor_parallel_size}, ${v.dtype}, max_model_len ${v.max_model_len ?? 4096}, ` +
      `${cfg.engine.max_concurrency} sequences in flight); workers tokenize, score and train; after each update every server is paused, ` +
      `reloaded in place from the checkpoint (no restart), its prefix cache reset and its weight version set` +
      (cfg.cluster.type === "ray" ? "; each server is a Ray actor in a placement-group bundle of its own, on its node's address" : "");
  }
  const l = cfg.engine.llama_cpp;
  return `rollout engine: llama.cpp llama-server (${l.parallel} slots, ${l.ctx_size} tokens each, GGUF ${l.gguf ?? "of the quickstart model"}); ` +
    `workers tokenize, score and train; before sampling after an update the checkpoint is written as ${l.sync_type} GGUF and served`;
}

/** The update's part of an iteration's plan line, in the chosen algorithm's own terms. */
export function updatePlan(cfg: Experiment): string {
  const t = cfg.train;
  if (t.algorithm === "grpo") {
    const g = t.grpo;
    return `groups (${g.advantage} advantages${g.dynamic_sampling ? ", dynamic sampling" : ""}${g.overlong_filter ? ", overlong filter" : ""}) ` +
      `→ behaviour log-probs (T=${cfg.rollout.temperature})${g.kl_coef > 0 ? " → KL reference log-probs" : ""} → GRPO (batch ${t.batch_size} samples, lr ${t.learning_rate}, ` +
      `clip [${+(1 - g.clip_low).toFixed(6)}, ${+(1 + g.clip_high).toFixed(6)}], ${g.loss_aggregation}-level${g.kl_coef > 0 ? `, KL ${g.kl_estimator} × ${g.kl_coef} in the ${g.kl_in} to ${g.kl_reference === "base" ? "the base model" : g.kl_reference} (frozen)` : ""})`;
  }
  return `pairs (pass rate in (${cfg.pairs.min_pass_rate}, ${cfg.pairs.max_pass_rate}]) → reference log-probs → DPO ` +
    `(batch ${t.batch_size}, lr ${t.learning_rate}, β ${t.beta})`;
}

export async function runCommand(file: string, opts: RunOptions): Promise<number> {
  const { config: cfg, explicit } = loadExperiment(file, opts.set);
  if (cfg.task === "synthesis") return synthesisCommand(file, cfg, opts, explicit);
  checkPlacement(cfg, file); // a GPU shared without asking, or GPU work without a GPU: exit 2 before anything starts
  setMinTokensPerS(cfg.workers.min_tokens_per_s); // deadlines grow with the work asked (src/rpc/deadlines.ts)
  const runDir = opts.runDir ? resolve(opts.runDir) : defaultRunDir(cfg, explicit);
  const configDir = dirname(resolve(file));
  const missing = opts.dryRun ? missingInputs(cfg, configDir) : [];
  // a cluster recipe, dry-run here: it prints what it can and the run's refusals (exit 2 when there are any)
  if (missing.length) return dryRunElsewhere(cfg, planText(cfg, runDir), missing, runRefusals(cfg, file, configDir, false));
  const refusals = runRefusals(cfg, file, configDir); // the dry-run prints them all; a run stops on them here
  const refused = opts.dryRun ? undefined : refusalError(refusals, file);
  if (refused) throw refused;
  // Data and model are read and checked before the run directory exists: bad data writes nothing.
  const problems = loadProblems(cfg, configDir);
  const sftData = cfg.task === "sft" ? readSftData(cfg, configDir) : undefined;
  if (cfg.engine.type === "vllm" && !cfg.engine.base_url && cfg.cluster.type === "local" && !opts.dryRun) {
    engineGpuSlices(cfg, hostGpuIds(), file); // too few GPUs on this host for the servers and the workers: exit 2 now
  }
  const identity = runIdentity(cfg, configDir, problems);
  if (opts.dryRun) return dryRun(cfg, runDir, identity, problems, firstPromptSection(cfg, problems, identity.model.path ?? cfg.model.source), refusals);
  pythonPath(); // fail early, with the fix, when the environment is missing
  const t0 = performance.now();
  const { resumed, state } = prepareRunDir(runDir, cfg, identity, problems);
  const unlock = lockRunDir(runDir);
  const journal = new Journal(join(runDir, "journal.sqlite"));
  const log = (m: string) => process.stderr.write(`[promptcot] ${m}\n`);
  log(`${resumed ? "resuming" : "starting"} run ${runDir}`);
  const added = resumed ? configDiff(readFileSync(join(runDir, "config.resolved.yaml"), "utf8"), cfg).added : [];
  if (added.length) log(`config keys new since this run started, at their current values: ${added.join(", ")}`);
  if (state === "legacy") log("this run predates data and model fingerprints: recorded them now (run.json); its data matched the run's copy where there was one");
  journal.event(resumed ? "run_resumed" : "run_started", { pid: process.pid, train: identity.train.sha256, heldout: identity.heldout.sha256, model: identity.model.sha256 });

  const removeInterrupt = onInterrupt(journal, unlock, log);

  const latest = latestUpdate(journal);

  const pool = new WorkerPool(
    cfg.workers.count,
    {
      modelSource: identity.model.path ?? cfg.model.source, dtype: cfg.model.dtype, device: cfg.model.device, trainableLayers: cfg.model.trainable_layers, decodeWidth: cfg.model.decode_width,
      seed: cfg.seed, threads: cfg.workers.threads, startupTimeoutS: cfg.workers.startup_timeout_s, logDir: join(runDir, "logs"), runDir,
      trainerRanks: cfg.workers.trainer_ranks, activationCheckpointing: cfg.parallel.activation_checkpointing,
      // on one GPU host the managed vLLM servers hold the first GPUs (the plan's rollout GPUs); the workers follow
      ...(cfg.cluster.type === "local" ? { deviceOffset: workerDeviceOffset(cfg, hostGpuIds().length) } : {}),
    },
    restartPolicyOf(cfg.workers),
    journal,
    launcherFor(cfg.cluster, join(runDir, "ray")),
  );
  const grader = await createMathGraderByName(cfg.grader.math, { timeoutMs: cfg.grader.timeout_ms });
  const hasCode = [...problems.train, ...problems.heldout].some((p) => p.kind === "code");
  const codeGrader = hasCode ? createRunCodeGrader(cfg.grader.code) : undefined;
  const timer = new StageTimer();
  const ctx: RunContext = { cfg, runDir, configDir, journal, pool, grader, codeGrader, metrics: new MetricsSink(join(runDir, "metrics.jsonl")), timer, problems, log };
  let engine: PolicyEngine | undefined;
  try {
    await timer.time("worker startup", async () => {
      log(`starting ${cfg.workers.count} worker(s) from ${latest?.checkpoint ?? "the base model"}`);
      await pool.start(latest?.checkpoint, latest?.global_step ?? 0);
    });
    engine = await timer.time("engine startup", () => policyEngineFromConfig(cfg, runDir, log));
    if (engine) ctx.engine = engine;
    const { before, iterations, report: extra }: { before: EvalSummary; iterations: IterationResult[]; report?: string } =
      sftData ? await sftRegime(ctx, sftData) : cfg.proposer.enabled ? await proposerRegime(ctx) : await selfPlay(ctx);
    await timer.time("export", async () => {
      for (const it of iterations) exportIteration(ctx, it.iteration);
    });
    const rss = pool.workers.map((w) => peakRssMb(w.pid));
    const report = renderReport(ctx, before, iterations, { wallSeconds: (performance.now() - t0) / 1000, workerPeakRssMb: rss, resumed }) + (extra ? `\n\n${extra}` : "");
    writeReport(runDir, report);
    journal.event("run_finished", {});
    process.stdout.write(`\n${report}\n\nreport: ${join(runDir, "report.md")}\n`);
    return 0;
  } finally {
    await engine?.close();
    await pool.stop();
    await grader.close();
    await codeGrader?.close();
    journal.close();
    unlock();
    removeInterrupt();
  }
}

/** Prints what a run would do and stand on; exit 2 when the run would refuse the config or its directory. */
function dryRun(cfg: Experiment, runDir: string, identity: RunIdentity, problems: Parameters<typeof checkRunDir>[3], firstPrompt: string,
  refusals: ConfigError[]): number {
  let verdict: string, code = 0;
  try {
    verdict = checkRunDir(runDir, cfg, identity, problems) === "new" ? "new run" : "resumes it (config, data and model match)";
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    [verdict, code] = [`would refuse to resume: ${e.message}`, 2];
  }
  const placement = placementSection(cfg);
  process.stdout.write(
    `# resolved config\n${resolvedYaml(cfg)}\n# data and model fingerprints (recorded in run.json; a resume on others is refused)\n` +
      `${identityLines(identity).join("\n")}\n# plan (dry run: nothing started, nothing written)\n${planText(cfg, runDir)}\n` +
      `run directory status: ${verdict}\n${placement.text}${firstPrompt}`,
  );
  if (code) process.stderr.write(`error: ${runDir}: ${verdict}\n`);
  return reportRefusals(refusals) || code || placement.code;
}

/** VmHWM: the kernel's record of the process's peak resident set. */
function peakRssMb(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}
