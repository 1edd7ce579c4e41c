// Generation as journaled units: one unit per (prompt, sample). Only a prompt's missing samples are
// requested (again), each with its own seed, so redone samples are identical to the lost ones.
import type { Sampling } from "../config/schema.js";
import { problemMessages } from "../data/prompt-format.js";
import type { Problem } from "../data/problems.js";
import type { RunContext } from "../experiment/context.js";
import { unitId, unitSeed } from "../experiment/ids.js";
import type { UnitRow } from "../experiment/journal.js";
import type { EngineSample, RolloutEngine } from "./engine.js";
import type { PolicyEngine } from "./policy-engine.js";
import { workerEngine } from "./worker-engine.js";
import { Progress } from "../telemetry/progress.js";
import { expectedWeightsVersion, withCurrentWeights } from "../train/weight-sync.js";

export interface SampleRecord {
  prompt_id: string;
  sample: number;
  seed: number;
  text: string;
  token_ids: number[];
  prompt_token_ids: number[];
  /** "stop" | "length": a "length" sample was cut at max_tokens and is never a chosen answer. */
  finish_reason: string;
  /** The templated prompt ended inside an open <think> block: graders need it (see verify/think.ts). */
  prompt_opens_think: boolean;
  /** The policy version the sample was drawn from (the pool step whose weights the engine held; 0 = base). */
  weights_version?: number;
  /** The engine's log-prob of each sampled token (raw, before temperature), when the engine returns them. The
   *  trainer scores its own; these are for checking rollout/trainer agreement. */
  logprobs?: number[];
}

export interface GenerateStageOptions {
  label: string;
  stage: string;
  iteration: number;
  problems: Problem[];
  sampling: Sampling;
  /** Turns a finished sample into the rows to journal (eval grades here, in the same transaction). */
  toRows: (problem: Problem, sample: SampleRecord, id: string) => Promise<UnitRow[]>;
  /** Seeds independent of the iteration: every eval draws the same samples' seeds, so before/after are paired. */
  pairedSeeds?: boolean;
}

export function sampleSeeds(ctx: RunContext, o: Pick<GenerateStageOptions, "stage" | "iteration" | "sampling" | "pairedSeeds">, p: Problem): number[] {
  const seed = (i: number) =>
    o.pairedSeeds ? unitSeed(ctx.cfg.seed, o.stage, "paired", p.id, i) : unitSeed(ctx.cfg.seed, o.stage, o.iteration, p.id, i);
  return Array.from({ length: o.sampling.samples_per_prompt }, (_, i) => seed(i));
}

/** Indices of `p`'s samples without a journaled result. */
function missingSamples(ctx: RunContext, o: GenerateStageOptions, p: Problem): number[] {
  const all = Array.from({ length: o.sampling.samples_per_prompt }, (_, i) => i);
  return all.filter((i) => !ctx.journal.has(unitId(o.iteration, o.stage, p.id, i)));
}

export async function generateStage(ctx: RunContext, o: GenerateStageOptions): Promise<void> {
  const missing = o.problems.map((p) => missingSamples(ctx, o, p).length);
  const pending = o.problems.filter((_, i) => missing[i]! > 0);
  if (pending.length === 0) return;
  if (ctx.engine) return engineStage(ctx, ctx.engine, o, pending, missing.reduce((a, b) => a + b, 0));
  const chunks: Problem[][] = [];
  for (let i = 0; i < pending.length; i += o.sampling.prompts_per_request) {
    chunks.push(pending.slice(i, i + o.sampling.prompts_per_request));
  }
  const progress = new Progress(o.label, missing.reduce((a, b) => a + b, 0));
  const byId = new Map(pending.map((p) => [p.id, p]));
  let next = 0;
  const workerLoop = async (w: number) => {
    for (let c = next++; c < chunks.length; c = next++) {
      await ctx.pool.run(w, (rpc) => withCurrentWeights(ctx, w, rpc, () => {
        // A worker that missed a weight sync refuses rather than sampling from the wrong policy.
        const engine = workerEngine(rpc.generate.bind(rpc), {
          name: `worker-${w}`, timeoutMs: ctx.cfg.workers.generate_timeout_s * 1000, expectedWeightsVersion: expectedWeightsVersion(ctx.pool),
        });
        return runChunk(ctx, o, chunks[c]!, byId, engine, progress);
      }));
    }
  };
  await Promise.all(Array.from({ length: ctx.pool.size }, (_, w) => workerLoop(w)));
  progress.finish();
}

/** A window whose engine died mid-generation is redone (its missing samples only) after this many recoveries at most. */
const ENGINE_RECOVERIES = 2;

/**
 * Generation on the policy engine (engine.type llama_cpp or vllm): windows of prompts, each tokenized by a
 * worker and sent with enough samples to keep every server slot busy; the engine's lanes pull requests as
 * slots free. A server that dies mid-window is restarted and brought back to the pool's checkpoint before
 * the window's missing samples are asked for again.
 */
async function engineStage(ctx: RunContext, pe: PolicyEngine, o: GenerateStageOptions, pending: Problem[], total: number): Promise<void> {
  const progress = new Progress(o.label, total);
  const window = Math.max(o.sampling.prompts_per_request, Math.ceil((4 * ctx.cfg.engine.max_concurrency) / o.sampling.samples_per_prompt));
  for (let i = 0; i < pending.length; i += window) {
    const chunk = pending.slice(i, i + window);
    for (let attempt = 0; ; attempt++) {
      try {
        await engineWindow(ctx, pe, o, chunk, progress);
        break;
      } catch (e) {
        if (pe.engine.alive?.() !== false || attempt >= ENGINE_RECOVERIES) throw e;
        ctx.log(`${pe.name} died while generating (${(e as Error).message.split("\n")[0]}); restarting it`);
        ctx.metrics.write({ kind: "engine_restart", stage: o.stage, iteration: o.iteration, engine: pe.name });
      }
    }
  }
  progress.finish();
}

async function engineWindow(ctx: RunContext, pe: PolicyEngine, o: GenerateStageOptions, chunk: Problem[], progress: Progress): Promise<void> {
  const engine = await pe.current(ctx); // recovers a dead server and syncs it to the pool's checkpoint first
  const version = pe.servedStep(ctx);
  const byId = new Map(chunk.map((p) => [p.id, p]));
  const wanted = new Map(chunk.map((p) => [p.id, missingSamples(ctx, o, p)]));
  const todo = chunk.filter((p) => wanted.get(p.id)!.length > 0);
  if (todo.length === 0) return;
  const seeds = new Map(chunk.map((p) => [p.id, sampleSeeds(ctx, o, p)]));
  const { prompts, opensThink } = await pe.prompts(ctx, todo, (p) => wanted.get(p.id)!.map((j) => seeds.get(p.id)![j]!));
  const promptIds = new Map(prompts.map((p) => [p.id, p.promptTokenIds!]));
  const opts = { logprobs: true, chatTemplateKwargs: ctx.cfg.model.chat_template_kwargs };
  for await (const r of engine.generate(prompts, o.sampling, opts)) {
    const added = await journalAnswer(ctx, o, { byId, wanted, seeds }, engine.name, r, async (p) => ({
      token_ids: await pe.completionIds(ctx, r), prompt_token_ids: promptIds.get(p.id)!, prompt_opens_think: opensThink.get(p.id)!,
      weights_version: version, ...(r.logprobs ? { logprobs: r.logprobs } : {}),
    }));
    if (added) progress.tick(1);
  }
}

async function runChunk(
  ctx: RunContext,
  o: GenerateStageOptions,
  chunk: Problem[],
  byId: Map<string, Problem>,
  engine: RolloutEngine,
  progress: Progress,
): Promise<void> {
  // Recomputed on every (re)try. The engine numbers its answers by position in the seeds, so
  // `wanted` maps a position back to the sample's own index and seed.
  const wanted = new Map(chunk.map((p) => [p.id, missingSamples(ctx, o, p)]));
  const todo = chunk.filter((p) => wanted.get(p.id)!.length > 0);
  if (todo.length === 0) return;
  const seeds = new Map(chunk.map((p) => [p.id, sampleSeeds(ctx, o, p)]));
  const prompts = todo.map((p) => ({
    id: p.id, messages: problemMessages(p, ctx.cfg.data), seeds: wanted.get(p.id)!.map((i) => seeds.get(p.id)![i]!),
  }));
  const opts = { chatTemplateKwargs: ctx.cfg.model.chat_template_kwargs };
  for await (const r of engine.generate(prompts, o.sampling, opts)) {
    const added = await journalAnswer(ctx, o, { byId, wanted, seeds }, engine.name, r, async () => ({
      token_ids: r.tokenIds ?? [], prompt_token_ids: r.promptTokenIds ?? [], prompt_opens_think: r.promptOpensThink,
      weights_version: expectedWeightsVersion(ctx.pool),
    }));
    if (added) progress.tick(1);
  }
}

interface AnswerLookup {
  byId: Map<string, Problem>;
  /** Per prompt, the sample index of each requested position (the engine numbers answers by position). */
  wanted: Map<string, number[]>;
  seeds: Map<string, number[]>;
}

/**
 * Journals one engine answer as its unit, unless already journaled; true when a row was added. `ids` gives
 * the token ids: the worker's own, or (policy engine) the server's completion and the worker's prompt.
 */
async function journalAnswer(
  ctx: RunContext,
  o: GenerateStageOptions,
  l: AnswerLookup,
  engineName: string,
  r: EngineSample,
  ids: (p: Problem) => Promise<Pick<SampleRecord, "token_ids" | "prompt_token_ids" | "prompt_opens_think" | "weights_version" | "logprobs">>,
): Promise<boolean> {
  const problem = l.byId.get(r.promptId);
  if (!problem) throw new Error(`${engineName} answered for unknown prompt '${r.promptId}'`);
  const index = l.wanted.get(problem.id)?.[r.position];
  if (index === undefined) throw new Error(`${engineName} answered sample position ${r.position} of prompt '${r.promptId}', which was not requested`);
  const id = unitId(o.iteration, o.stage, problem.id, index);
  if (ctx.journal.has(id)) return false;
  const sample: SampleRecord = {
    prompt_id: problem.id, sample: index, seed: l.seeds.get(problem.id)![index]!, text: r.text, finish_reason: r.finishReason, ...(await ids(problem)),
  };
  return ctx.journal.record(await o.toRows(problem, sample, id)) > 0;
}
