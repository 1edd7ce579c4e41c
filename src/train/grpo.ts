// GRPO for one iteration. The controller does everything outside autograd: rewards, group-normalised
// advantages, dynamic sampling, overlong filtering and the behaviour policy's per-token log-probs; the
// trainer only evaluates the clipped loss (worker losses.grpo_loss). Journaled units:
//   rollout/grade per sample (as DPO) -> itNNN/groups (one unit) -> itNNN/old/<prompt>/<sample> -> update.
//
// Why the old log-probs are scored on the trainer, at the sampling temperature, before the update:
// the ratio pi_theta / pi_old must compare like with like. The worker samples from softmax(logits / T)
// (then top-p/top-k/min-p truncation) but its sampled log-probs come from the raw logits, and a rollout
// engine (vLLM, another GPU kernel) differs from the trainer's forward in the last bits anyway. Scoring the
// samples with the trainer's own forward at logit_temperature T, while it still holds the weights that
// generated them (the iteration's starting weights), makes the first step's ratio 1 up to float noise, so
// clipping acts only on real policy movement within the iteration. Truncation (top-p/top-k) is not
// modelled: the ratio is between the untruncated tempered distributions, as TRL and verl do.
//
// The KL reference (kl_coef > 0) is frozen: the run's base model, or the checkpoint train.grpo.kl_reference
// names, held by the trainer as a second, frozen copy (ScoreRequest.reference). Anchoring to the iteration's
// starting weights instead (as before) let the penalty restart at 0 every iteration, so it never held the run
// near its base. The reference scores every kept sample once, at the same temperature and in the same fixed
// batches as the behaviour log-probs (in iteration 1 the two are the same numbers), journaled per sample
// (itNNN/klref/...), so a resumed run reads them back instead of scoring again. train.grpo.kl_in picks where
// the penalty acts, as verl: "loss" adds kl_coef * k2 or k3 per token to the loss (worker losses.kl_penalty);
// "reward" subtracts kl_coef * sum_t k1 (behaviour minus reference log-prob) from each sample's reward before
// the group advantages, which are then recomputed (dynamic sampling still filters groups on the task reward).
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { Problem } from "../data/problems.js";
import type { RunContext } from "../experiment/context.js";
import { iterTag, shuffled, unitId, unitSeed } from "../experiment/ids.js";
import { LossKind, type TrainExample } from "../rpc/gen/promptcot_worker.js";
import { generateStage, type SampleRecord } from "../rollout/generate-stage.js";
import type { SampleOutcome } from "../selfplay/pairs.js";
import { gradeStage, gradingCounts, sampleOutcomes } from "../selfplay/stages.js";
import { Progress } from "../telemetry/progress.js";
import { epochBatches, updateUnit, type UpdateRecord } from "./dpo.js";
import { completionIds, logprobsOf, scoreItemOf, workerReadsShards } from "./worker-reads.js";

const TRAINER = 0;
const SCORE_BATCH = 8;
const SCORE_DEADLINE_MS = 60 * 60 * 1000;
// Keeps mean_std finite on a group whose rewards barely differ; groups with equal rewards get 0 anyway.
const STD_EPS = 1e-6;

export type AdvantageKind = "mean_std" | "mean" | "loo";

export interface GrpoSample {
  id: string;
  reward: number;
  advantage: number;
}

export interface GrpoGroup {
  promptId: string;
  samples: GrpoSample[];
}

export interface GroupsRecord {
  groups: GrpoGroup[];
  /** Groups dropped by dynamic sampling (all right or all wrong), rollout rounds, prompts rolled out. */
  dropped: number;
  rounds: number;
  prompts: number;
}

/** Group-normalised advantages of one prompt's rewards. */
export function groupAdvantages(rewards: number[], kind: AdvantageKind): number[] {
  const n = rewards.length;
  const sum = rewards.reduce((a, b) => a + b, 0);
  const mean = sum / Math.max(n, 1);
  if (kind === "mean") return rewards.map((r) => r - mean);
  if (kind === "loo") return rewards.map((r) => (n < 2 ? 0 : r - (sum - r) / (n - 1)));
  // Sample standard deviation (n - 1), as TRL's GRPO.
  const std = n < 2 ? 0 : Math.sqrt(rewards.reduce((a, r) => a + (r - mean) ** 2, 0) / (n - 1));
  return rewards.map((r) => (std === 0 ? 0 : (r - mean) / (std + STD_EPS)));
}

/** A sample's reward; train.grpo.reward names "verdict" or a user function "file.ts#export" of this type. */
export type RewardFn = (sample: SampleOutcome) => number;

/** 1 for a right answer, 0 otherwise (a sample cut at max_tokens is never right: its box is unfinished work). */
export const verdictReward: RewardFn = (s) => (s.verdict === "correct" && s.finishReason !== "length" ? 1 : 0);

export async function rewardFn(name: string, baseDir: string): Promise<RewardFn> {
  if (name === "verdict") return verdictReward;
  const hash = name.indexOf("#");
  if (hash < 0) throw new Error(`train.grpo.reward: unknown reward '${name}' (known: verdict, or "file.ts#export")`);
  const file = resolve(baseDir, name.slice(0, hash));
  const fn = ((await import(pathToFileURL(file).href)) as Record<string, unknown>)[name.slice(hash + 1)];
  if (typeof fn !== "function") throw new Error(`train.grpo.reward '${name}': ${file} has no exported function '${name.slice(hash + 1)}'`);
  return fn as RewardFn;
}

/**
 * Groups of `promptIds` (in that order) from graded outcomes. Grader timeouts and errors never count; a
 * sample cut at max_tokens leaves its group with overlong_filter (neither trained on nor in the group's
 * statistics), else it counts as wrong. A completion that fails pairs.validity (unclosed think, CJK, no
 * box) leaves its group with invalid "drop" (as PromptCoT 2.0) and counts as wrong with "reject"; with no
 * `invalid` option the validity reasons are ignored. With dynamic sampling, groups whose rewards are all
 * equal (advantage 0: no signal) are dropped; empty groups always are.
 */
export function buildGroups(
  outcomes: SampleOutcome[],
  promptIds: string[],
  o: { advantage: AdvantageKind; overlong_filter: boolean; dynamic_sampling: boolean; invalid?: "drop" | "reject" },
  reward: RewardFn = verdictReward,
): { kept: GrpoGroup[]; dropped: number } {
  const byPrompt = new Map<string, SampleOutcome[]>(promptIds.map((id) => [id, []]));
  for (const s of outcomes) byPrompt.get(s.promptId)?.push(s);
  const kept: GrpoGroup[] = [];
  let dropped = 0;
  for (const [promptId, all] of byPrompt) {
    const isInvalid = (s: SampleOutcome) => o.invalid !== undefined && (s.invalid?.length ?? 0) > 0;
    const counted = all.filter((s) => s.verdict !== "timeout" && s.verdict !== "error" && !(o.overlong_filter && s.finishReason === "length"))
      .filter((s) => !(o.invalid === "drop" && isInvalid(s)));
    const rewards = counted.map((s) => reward(isInvalid(s) ? { ...s, verdict: "incorrect" } : s));
    if (counted.length === 0) continue;
    if (o.dynamic_sampling && rewards.every((r) => r === rewards[0])) {
      dropped++;
      continue;
    }
    const adv = groupAdvantages(rewards, o.advantage);
    kept.push({ promptId, samples: counted.map((s, i) => ({ id: s.id, reward: rewards[i]!, advantage: adv[i]! })) });
  }
  return { kept, dropped };
}

/**
 * Rolls out and grades prompts in the iteration's seeded order until prompts_per_iteration groups are
 * kept (refilling after dynamic sampling drops some) or the train set is used up; one journaled unit.
 * Every round's prompts follow from journaled grades, so a resumed run repeats the same rounds.
 */
export async function groupsStage(ctx: RunContext, iteration: number): Promise<GroupsRecord> {
  const id = `${iterTag(iteration)}/groups`;
  const done = ctx.journal.get<GroupsRecord>(id);
  if (done) return done;
  const g = ctx.cfg.train.grpo;
  const order = shuffled(ctx.problems.train, unitSeed(ctx.cfg.seed, "grpo-order", iteration));
  const target = g.prompts_per_iteration > 0 ? Math.min(g.prompts_per_iteration, order.length) : order.length;
  // A refill round is at least one Generate call per worker, so a small deficit does not idle the pool.
  const minRound = ctx.cfg.rollout.prompts_per_request * ctx.cfg.workers.count;
  const reward = await rewardFn(g.reward, ctx.configDir);
  const kept: GrpoGroup[] = [];
  let [used, rounds, dropped] = [0, 0, 0];
  while (used < order.length && kept.length < target && (rounds === 0 || g.dynamic_sampling)) {
    const want = rounds === 0 ? target : Math.max(target - kept.length, minRound);
    const batch = order.slice(used, used + want);
    [used, rounds] = [used + batch.length, rounds + 1];
    await rolloutRound(ctx, iteration, batch, rounds);
    const ids = new Set(batch.map((p) => p.id));
    const built = buildGroups(sampleOutcomes(ctx, iteration).filter((s) => ids.has(s.promptId)), batch.map((p) => p.id), { ...g, invalid: ctx.cfg.pairs.validity.invalid }, reward);
    kept.push(...built.kept);
    dropped += built.dropped;
  }
  const record: GroupsRecord = { groups: kept.slice(0, target), dropped, rounds, prompts: used };
  const counts = gradingCounts(sampleOutcomes(ctx, iteration));
  ctx.journal.record([{ id, stage: "groups", iteration, result: record }]);
  ctx.metrics.write({ iteration, kind: "grading", ...counts, groups: record.groups.length, groups_dropped: dropped, rounds, prompts: used });
  ctx.log(`iteration ${iteration}: ${record.groups.length} groups kept of ${used} prompts in ${rounds} round(s); ${dropped} dropped (all right or all wrong)`);
  return record;
}

async function rolloutRound(ctx: RunContext, it: number, problems: Problem[], round: number): Promise<void> {
  const { cfg, timer } = ctx;
  await timer.time("generate", () =>
    generateStage(ctx, {
      label: `rollout ${it}/${cfg.iterations} round ${round}`, stage: "rollout", iteration: it, problems, sampling: cfg.rollout,
      toRows: async (_p, sample, id) => [{ id, stage: "rollout", iteration: it, result: sample }],
    }),
  );
  await timer.time("grade", () => gradeStage(ctx, it));
}

interface OldRecord {
  logprobs: number[];
}

type ScoredStage = "old" | "klref";
const scoredId = (stage: ScoredStage, iteration: number, sampleId: string) => unitId(iteration, stage, ...sampleId.split("/").slice(-2));

/** The frozen KL reference's name for ScoreRequest.reference: "base", or the checkpoint's absolute path. */
export function klReferenceOf(cfg: RunContext["cfg"], configDir: string): string {
  const r = cfg.train.grpo.kl_reference;
  return r === "base" ? "base" : resolve(configDir, r);
}

/** What is wrong with train.grpo.kl_reference before anything starts, if anything (a checkpoint that is not there). */
export function klReferenceProblem(cfg: RunContext["cfg"], configDir: string): string | undefined {
  if (cfg.train.algorithm !== "grpo" || cfg.train.grpo.kl_coef === 0) return undefined;
  const ref = klReferenceOf(cfg, configDir);
  if (ref === "base" || existsSync(join(ref, "worker_meta.json"))) return undefined;
  return `train.grpo.kl_reference: no checkpoint at ${ref} (a directory with worker_meta.json, e.g. runs/NAME/checkpoints/step-N); use "base" for the run's own model`;
}

/**
 * The behaviour policy's per-token log-probs of every kept sample at the sampling temperature, scored on
 * the trainer before the update (see the file comment). Journaled in fixed batches from the start of the
 * list, so a resumed run scores the same batches (batch shape can move the last bits of a float).
 */
export async function oldLogprobsStage(ctx: RunContext, iteration: number, groups: GrpoGroup[]): Promise<void> {
  await scoreStage(ctx, iteration, groups, "old", "");
}

/** The frozen KL reference's per-token log-probs of every kept sample (kl_coef > 0), as oldLogprobsStage. */
export async function klReferenceStage(ctx: RunContext, iteration: number, groups: GrpoGroup[]): Promise<void> {
  if (ctx.cfg.train.grpo.kl_coef === 0) return;
  const fresh = await scoreStage(ctx, iteration, groups, "klref", klReferenceOf(ctx.cfg, ctx.configDir));
  if (fresh) {
    const kl = meanTokenK1(ctx, iteration, groups);
    ctx.metrics.write({ iteration, kind: "kl_reference", kl_k1_per_token: kl.perToken, kl_k1_per_sample: kl.perSample });
    ctx.log(`iteration ${iteration}: KL to the reference (${ctx.cfg.train.grpo.kl_reference}), k1 per token ${kl.perToken.toFixed(5)}`);
  }
}

/** Scores the groups' samples in fixed batches; true when anything was scored (not all journaled already). */
async function scoreStage(ctx: RunContext, iteration: number, groups: GrpoGroup[], stage: ScoredStage, reference: string): Promise<boolean> {
  const ids = groups.flatMap((g) => g.samples.map((s) => s.id));
  const batches: string[][] = [];
  for (let i = 0; i < ids.length; i += SCORE_BATCH) batches.push(ids.slice(i, i + SCORE_BATCH));
  const todo = batches.filter((b) => !b.every((sid) => ctx.journal.has(scoredId(stage, iteration, sid))));
  if (todo.length === 0) return false;
  const samples = samplesById(ctx, iteration);
  const refs = await workerReadsShards(ctx, TRAINER);
  const progress = new Progress(stage === "old" ? "behaviour log-probs" : "KL reference log-probs", todo.length);
  for (const batch of todo) {
    const items = batch.map((sid) => scoreItemOf(sid, samples.get(sid)!, refs));
    const req = { items, returnTokenLogprobs: true, logitTemperature: ctx.cfg.rollout.temperature || 1, reference };
    const res = await ctx.pool.run(TRAINER, (rpc) => rpc.score(req, SCORE_DEADLINE_MS));
    ctx.journal.record(res.results.map((r) => ({ id: scoredId(stage, iteration, r.id), stage, iteration, result: { logprobs: r.tokenLogprobs } satisfies OldRecord })));
    progress.tick(1);
  }
  progress.finish();
  return true;
}

/** Sum over a sample's tokens of k1 = behaviour minus reference log-prob (0 without a journaled reference). */
function sampleK1(ctx: RunContext, iteration: number, sampleId: string): number {
  const old = ctx.journal.get<OldRecord>(scoredId("old", iteration, sampleId));
  const ref = ctx.journal.get<OldRecord>(scoredId("klref", iteration, sampleId));
  if (!old || !ref) return 0;
  const [o, r] = [Array.from(old.logprobs), Array.from(ref.logprobs)];
  return o.reduce((acc, v, i) => acc + (v - r[i]!), 0);
}

function meanTokenK1(ctx: RunContext, iteration: number, groups: GrpoGroup[]): { perToken: number; perSample: number } {
  const samples = samplesById(ctx, iteration);
  const ids = groups.flatMap((g) => g.samples.map((s) => s.id));
  const total = ids.reduce((a, id) => a + sampleK1(ctx, iteration, id), 0);
  const tokens = ids.reduce((a, id) => a + samples.get(id)!.token_ids.length, 0);
  return { perToken: total / Math.max(tokens, 1), perSample: total / Math.max(ids.length, 1) };
}

/**
 * kl_in: reward. Each sample's reward less kl_coef times its summed k1, then the group advantages again
 * (the policy gradient of a k1 reward is the KL's own gradient; tests/test_losses.py). A pure function of
 * journaled rows, so a resumed run builds the same advantages.
 */
export function klPenalizedGroups(groups: GrpoGroup[], k1: (sampleId: string) => number, klCoef: number, kind: AdvantageKind): GrpoGroup[] {
  return groups.map((g) => {
    const rewards = g.samples.map((s) => s.reward - klCoef * k1(s.id));
    const adv = groupAdvantages(rewards, kind);
    return { ...g, samples: g.samples.map((s, i) => ({ ...s, reward: rewards[i]!, advantage: adv[i]! })) };
  });
}

function samplesById(ctx: RunContext, iteration: number): Map<string, SampleRecord> {
  return new Map(ctx.journal.list<SampleRecord>("rollout", iteration).map((s) => [s.id, s.result]));
}

function examplesFor(ctx: RunContext, iteration: number, groups: GrpoGroup[], refs: boolean): TrainExample[] {
  const samples = samplesById(ctx, iteration);
  const g = ctx.cfg.train.grpo;
  const klLoss = g.kl_coef > 0 && g.kl_in === "loss";
  const trained = g.kl_coef > 0 && g.kl_in === "reward" ? klPenalizedGroups(groups, (id) => sampleK1(ctx, iteration, id), g.kl_coef, g.advantage) : groups;
  return trained.flatMap((group) =>
    group.samples
      .filter((s) => samples.get(s.id)!.token_ids.length > 0)
      .map((s) => {
        const sample = samples.get(s.id)!;
        const old = ctx.journal.get<OldRecord>(scoredId("old", iteration, s.id))!;
        const ref = klLoss ? ctx.journal.get<OldRecord>(scoredId("klref", iteration, s.id))! : undefined;
        return {
          ...completionIds(sample, refs),
          refChosenLogp: 0, refRejectedLogp: 0, advantage: s.advantage, weight: 1, ...logprobsOf(old, ref, refs),
        };
      }),
  );
}

/** The GRPO update as one journaled unit (the shared update unit: abandon and redo on a trainer restart). */
export async function grpoUpdateStage(ctx: RunContext, iteration: number, groups: GrpoGroup[], globalStep: number): Promise<UpdateRecord> {
  const g = ctx.cfg.train.grpo;
  const hyper = {
    // kl_in: reward puts the penalty in the advantages (examplesFor); the loss then has no KL term.
    clipLow: g.clip_low, clipHigh: g.clip_high, clipRatioC: g.clip_ratio_c, klCoef: g.kl_in === "loss" ? g.kl_coef : 0, klEstimator: g.kl_estimator,
    lossAggregation: g.loss_aggregation, logitTemperature: ctx.cfg.rollout.temperature || 1,
  };
  return updateUnit(ctx, iteration, { label: "GRPO", loss: LossKind.GRPO, hyper, batches: epochBatches(ctx, iteration, examplesFor(ctx, iteration, groups, await workerReadsShards(ctx, TRAINER))) }, globalStep);
}
