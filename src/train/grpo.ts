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
// The KL reference is the same starting policy, so its log-probs are the same numbers (sent as
// ref_logprobs only when kl_coef > 0; a separate reference model would only change where they come from).
import { resolve } from "node:path";
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

const oldId = (iteration: number, sampleId: string) => unitId(iteration, "old", ...sampleId.split("/").slice(-2));

/**
 * The behaviour policy's per-token log-probs of every kept sample at the sampling temperature, scored on
 * the trainer before the update (see the file comment). Journaled in fixed batches from the start of the
 * list, so a resumed run scores the same batches (batch shape can move the last bits of a float).
 */
export async function oldLogprobsStage(ctx: RunContext, iteration: number, groups: GrpoGroup[]): Promise<void> {
  const ids = groups.flatMap((g) => g.samples.map((s) => s.id));
  const batches: string[][] = [];
  for (let i = 0; i < ids.length; i += SCORE_BATCH) batches.push(ids.slice(i, i + SCORE_BATCH));
  const todo = batches.filter((b) => !b.every((sid) => ctx.journal.has(oldId(iteration, sid))));
  if (todo.length === 0) return;
  const samples = samplesById(ctx, iteration);
  const refs = await workerReadsShards(ctx, TRAINER);
  const progress = new Progress("behaviour log-probs", todo.length);
  for (const batch of todo) {
    const items = batch.map((sid) => scoreItemOf(sid, samples.get(sid)!, refs));
    const req = { items, returnTokenLogprobs: true, logitTemperature: ctx.cfg.rollout.temperature || 1 };
    const res = await ctx.pool.run(TRAINER, (rpc) => rpc.score(req, SCORE_DEADLINE_MS));
    ctx.journal.record(res.results.map((r) => ({ id: oldId(iteration, r.id), stage: "old", iteration, result: { logprobs: r.tokenLogprobs } satisfies OldRecord })));
    progress.tick(1);
  }
  progress.finish();
}

function samplesById(ctx: RunContext, iteration: number): Map<string, SampleRecord> {
  return new Map(ctx.journal.list<SampleRecord>("rollout", iteration).map((s) => [s.id, s.result]));
}

function examplesFor(ctx: RunContext, iteration: number, groups: GrpoGroup[], refs: boolean): TrainExample[] {
  const samples = samplesById(ctx, iteration);
  const withRef = ctx.cfg.train.grpo.kl_coef > 0;
  return groups.flatMap((g) =>
    g.samples
      .filter((s) => samples.get(s.id)!.token_ids.length > 0)
      .map((s) => {
        const sample = samples.get(s.id)!;
        const old = ctx.journal.get<OldRecord>(oldId(iteration, s.id))!;
        return {
          ...completionIds(sample, refs),
          refChosenLogp: 0, refRejectedLogp: 0, advantage: s.advantage, weight: 1, ...logprobsOf(old, withRef, refs),
        };
      }),
  );
}

/** The GRPO update as one journaled unit (the shared update unit: abandon and redo on a trainer restart). */
export async function grpoUpdateStage(ctx: RunContext, iteration: number, groups: GrpoGroup[], globalStep: number): Promise<UpdateRecord> {
  const g = ctx.cfg.train.grpo;
  const hyper = {
    clipLow: g.clip_low, clipHigh: g.clip_high, clipRatioC: g.clip_ratio_c, klCoef: g.kl_coef, klEstimator: g.kl_estimator,
    lossAggregation: g.loss_aggregation, logitTemperature: ctx.cfg.rollout.temperature || 1,
  };
  return updateUnit(ctx, iteration, { label: "GRPO", loss: LossKind.GRPO, hyper, batches: epochBatches(ctx, iteration, examplesFor(ctx, iteration, groups, await workerReadsShards(ctx, TRAINER))) }, globalStep);
}
