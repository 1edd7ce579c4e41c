// The proposer's stages inside self-play (proposer.enabled): warm start of the prompt model p on the seeds,
// then per iteration: p writes problems for sampled concept sets → filters, dedup against every earlier
// synthesized problem, decontamination against held-out → math references by teacher majority vote → the
// iteration's problems. After the policy's iteration: pass rate per problem → proposer pairs (band rule) →
// reference log-probs under p → p's DPO update (dpo.ts's update unit, its own unit name and checkpoints); or,
// with proposer.algorithm: grpo, R-Zero's reward per problem → advantages per concept set → p's old per-token
// log-probs → p's GRPO update through the same update unit.
// Every step is journaled under itNNN/proposer/... (pass rates under itNNN/passrate/<problem>), so a rerun
// resumes without redoing finished units.
import { join } from "node:path";
import type { WorkerPool } from "../cluster/pool.js";
import type { Problem } from "../data/problems.js";
import type { RunContext } from "../experiment/context.js";
import { pad, shuffled, unitId, unitSeed } from "../experiment/ids.js";
import { LossKind, type TrainExample } from "../rpc/gen/promptcot_worker.js";
import { countableGroups } from "../selfplay/pairs.js";
import { sampleOutcomes } from "../selfplay/stages.js";
import { Progress } from "../telemetry/progress.js";
import { updateUnit, type UpdateRecord } from "../train/dpo.js";
import { sftUpdate } from "../train/sft.js";
import { conceptPoolFromSets, uniformSampler } from "./concepts.js";
import { BenchmarkIndex, Deduplicator, type Verdict } from "./dedup/index.js";
import { dedupOutcome, runFilters } from "./generate.js";
import {
  proposerGroups, proposerPairBuilder, learnableYield, type CandidateOutcome, type ProposerCandidate, type ProposerGrpoGroup, type ProposerPair, type Yield,
} from "./proposer-pairs.js";
import { problemId, type DedupOutcome, type FilterOutcome, type GenerationRecord } from "./provenance.js";
import { referenceStage, voteUnit, type VoteRecord } from "./references.js";
import type { SeedRow } from "./proposer-seeds.js";
import type { Generator } from "./teacher.js";
import { parseGeneration, promptInput, promptTargetParts } from "./templates.js";
import { generateEach, sftExamples, tokenizeParts } from "./worker-io.js";
import type { RoleEngine } from "../rollout/role-engine.js";

export const P_GENERATE = "proposer/generate";
export const P_SCREEN = "proposer/screen";
export const P_PROBLEMS = "proposer/problems";
export const P_PAIRS = "proposer/pairs";
export const P_REF = "proposer/ref";
export const P_UPDATE = "proposer/update";
export const P_GROUPS = "proposer/groups";
export const P_OLD = "proposer/old";
export const PASSRATE = "passrate";
const DEADLINE_MS = 60 * 60 * 1000;

/** What the proposer stages need beyond the run: the prompt model's pool, the teacher, the seeds. */
export interface ProposerContext {
  pool: WorkerPool;
  /** The prompt model's managed engine (its weights follow `pool`'s checkpoints); absent: `pool` generates. */
  engine?: RoleEngine;
  teacher: Generator;
  seeds: SeedRow[];
}

export interface ScreenRow {
  unit: string;
  id: string;
  problem: string;
  filters: FilterOutcome;
  dedup?: DedupOutcome;
  kept: boolean;
}

export interface IterationProblems {
  problems: Problem[];
  counts: {
    generated: number; parsed: number; malformed: Record<string, number>; passed_filters: number; kept_dedup: number;
    /** Dropped by dedup and decontamination, by kind: exact/near duplicate, seed_duplicate, contaminated. */
    dropped_dedup?: Record<string, number>;
    references_agreed: number; dropped_low_agreement: number;
  };
}

export interface PassRateRecord {
  problem_id: string;
  pass_rate: number | null;
  correct: number;
  counted: number;
  samples: number;
}

export interface ProposerPairsRecord {
  pairs: ProposerPair[];
  yield: Yield;
  by_reason: Record<string, number>;
  /** Learnable problems among those the policy rolled out. */
  learnable_of_rolled_out: { learnable: number; total: number };
}

const checkpointDir = (ctx: RunContext) => join(ctx.runDir, "checkpoints", "proposer");

/** The newest journaled proposer update (warm start or DPO), where the prompt model starts on resume. */
export function latestProposerUpdate(ctx: Pick<RunContext, "journal">): { checkpoint: string; global_step: number } | undefined {
  const last = ctx.journal.countsByStage().filter((r) => r.stage === P_UPDATE).at(-1);
  return last ? ctx.journal.get<UpdateRecord>(unitId(last.iteration, P_UPDATE)) : undefined;
}

/** SFT of p on (concepts → rationale, problem) for every seed: p must write the markers before it can propose. */
export async function warmStart(ctx: RunContext, px: ProposerContext): Promise<void> {
  const byId = new Map(px.seeds.map((s) => [s.id, s]));
  const input = (s: SeedRow) => {
    const parts = promptTargetParts(s.rationale, s.prompt);
    return { id: s.id, text: promptInput(ctx.cfg.synthesis.templates, s.concepts), parts: [parts.rationale, parts.problem] };
  };
  await sftUpdate({
    journal: ctx.journal, pool: px.pool, metrics: ctx.metrics, log: ctx.log, label: "proposer warm start",
    unit: { id: unitId(0, P_UPDATE), stage: P_UPDATE, iteration: 0 },
    exampleIds: px.seeds.map((s) => s.id),
    load: (ids) => sftExamples(px.pool, ids.map((id) => input(byId.get(id)!))),
    hyper: ctx.cfg.proposer.warm_start, seed: unitSeed(ctx.cfg.seed, P_UPDATE, 0),
    checkpointDir: checkpointDir(ctx), resumeEverySteps: ctx.cfg.train.resume_every_steps,
  });
}

const setTag = (set: number) => `set-${pad(set)}`;
export const generationUnit = (it: number, set: number, j: number) => unitId(it, P_GENERATE, setTag(set), j);

/** p writes samples_per_set problems for each of `sets` concept sets drawn from the seeds' concepts. */
export async function synthesizeStage(ctx: RunContext, px: ProposerContext, it: number): Promise<void> {
  const g = ctx.cfg.proposer.generate;
  const ids = (set: number) => Array.from({ length: g.samples_per_set }, (_, j) => generationUnit(it, set, j));
  const pending = Array.from({ length: g.sets }, (_, s) => s).filter((s) => ids(s).some((id) => !ctx.journal.has(id)));
  if (pending.length === 0) return;
  const sampler = uniformSampler(conceptPoolFromSets(px.seeds.map((s) => ({ concepts: s.concepts }))), g.concepts_per_set);
  const synthesizer = { checkpoint: px.pool.checkpoint ?? null, step: px.pool.checkpointStep, em_iteration: 0 };
  const drawn = new Map(pending.map((s) => [setTag(s), { set: s, seed: unitSeed(ctx.cfg.seed, "proposer/concepts", it, s) }]));
  const items = [...drawn].map(([id, d]) => ({
    id,
    text: promptInput(ctx.cfg.synthesis.templates, sampler.sample(d.seed).concepts),
    seeds: Array.from({ length: g.samples_per_set }, (_, j) => unitSeed(ctx.cfg.seed, P_GENERATE, it, d.set, j)),
  }));
  const progress = new Progress(`iteration ${it}: synthesize ${pending.length * g.samples_per_set} problems`, pending.length * g.samples_per_set);
  await generateEach(px.engine ?? px.pool, ctx.journal, P_GENERATE, items, g.sampling, (item) => ids(drawn.get(item.id)!.set).every((id) => ctx.journal.has(id)), async (item, samples) => {
    const d = drawn.get(item.id)!;
    const concepts = sampler.sample(d.seed).concepts;
    const rows = samples.map((r, j) => {
      const parsed = parseGeneration(r.text, r.finishReason);
      const rec: GenerationRecord = {
        index: d.set, concepts, concept_seed: d.seed, sampling_seed: item.seeds[j]!, synthesizer, text: r.text, finish_reason: r.finishReason, ok: parsed.ok,
        ...(parsed.ok ? { id: problemId(parsed.problem), rationale: parsed.rationale, problem: parsed.problem } : { reason: parsed.reason }),
      };
      return { id: generationUnit(it, d.set, j), stage: P_GENERATE, iteration: it, result: rec };
    });
    progress.tick(ctx.journal.record(rows));
  });
  progress.finish();
}

const SEED_REF = "seed:";

/** A duplicate of a seed problem (p copied its training data) is its own reason: `seed_duplicate`. */
function screenOutcome(v: Verdict): DedupOutcome {
  const o = dedupOutcome(v);
  return o.duplicate_of?.startsWith(SEED_REF) ? { ...o, kind: "seed_duplicate", ...(!v.keep && v.reason === "exact_duplicate" ? { detail: "exact" } : {}) } : o;
}

/**
 * Filters, then dedup against the seed problems p was trained on and every earlier iteration's kept
 * problems, and decontamination against held-out; one unit. `seeds` is needed only when the unit is not
 * journaled yet.
 */
export function screenStage(ctx: RunContext, it: number, seeds?: readonly SeedRow[]): ScreenRow[] {
  const id = unitId(it, P_SCREEN);
  const done = ctx.journal.get<{ rows: ScreenRow[] }>(id);
  if (done) return done.rows;
  if (!seeds) throw new Error(`${id} is not journaled yet and no seeds were given to screen against`);
  const heldout = new BenchmarkIndex(ctx.cfg.proposer.dedup.threshold);
  for (const [i, p] of ctx.problems.heldout.entries()) heldout.add({ file: "held-out", line: i + 1, id: p.id, text: p.prompt });
  const dedup = new Deduplicator({ threshold: ctx.cfg.proposer.dedup.threshold, benchmarks: heldout });
  let index = 0;
  if (ctx.cfg.proposer.dedup.against_seeds) for (const s of seeds) dedup.check(s.prompt, { index, line: ++index, id: `${SEED_REF}${s.id}` });
  for (let e = 1; e < it; e++) {
    for (const r of screenStage(ctx, e, seeds)) if (r.kept) dedup.check(r.problem, { index, line: ++index, id: r.unit });
  }
  const rows: ScreenRow[] = [];
  for (const { id: unit, result: g } of ctx.journal.iterate<GenerationRecord>(P_GENERATE, it)) {
    if (!g.ok) continue;
    const filters = runFilters(g.problem!);
    const row: ScreenRow = { unit, id: g.id!, problem: g.problem!, filters, kept: false };
    if (filters.failed.length === 0) {
      row.dedup = screenOutcome(dedup.check(g.problem!, { index, line: ++index, id: unit }));
      row.kept = row.dedup.kept;
    }
    rows.push(row);
  }
  ctx.journal.record([{ id, stage: P_SCREEN, iteration: it, result: { rows } }]);
  return rows;
}

/** Synthesize → screen → references: the iteration's train problems, journaled as one unit at the end. */
export async function problemsStage(ctx: RunContext, px: ProposerContext, it: number): Promise<Problem[]> {
  const id = unitId(it, P_PROBLEMS);
  const done = ctx.journal.get<IterationProblems>(id);
  if (done) return done.problems;
  await ctx.timer.time("synthesize", () => synthesizeStage(ctx, px, it));
  const rows = screenStage(ctx, it, px.seeds);
  const kept = rows.filter((r) => r.kept);
  const t = ctx.cfg.proposer.teacher;
  const refs = await ctx.timer.time("references", () =>
    referenceStage(kept.map((r) => ({ id: r.id, prompt: r.problem })), px.teacher, ctx.journal, { samples: t.samples, minAgreement: t.min_agreement, seed: ctx.cfg.seed, sampling: t.sampling, fewShot: t.few_shot, ...(t.instruction ? { instruction: t.instruction } : {}) }),
  );
  const problems: Problem[] = refs.rows.map((r) => ({ id: r.id, prompt: r.prompt, answer: r.answer, source: `synthesized:it${pad(it)}` }));
  const gens = ctx.journal.list<GenerationRecord>(P_GENERATE, it).map((r) => r.result);
  const malformed: Record<string, number> = {};
  for (const g of gens) if (!g.ok) malformed[g.reason!] = (malformed[g.reason!] ?? 0) + 1;
  const counts: IterationProblems["counts"] = {
    generated: gens.length, parsed: gens.filter((g) => g.ok).length, malformed,
    passed_filters: rows.filter((r) => r.filters.failed.length === 0).length, kept_dedup: kept.length, dropped_dedup: dedupCounts(rows),
    references_agreed: refs.stats.kept, dropped_low_agreement: refs.stats.dropped_low_agreement,
  };
  ctx.journal.record([{ id, stage: P_PROBLEMS, iteration: it, result: { problems, counts } satisfies IterationProblems }]);
  ctx.log(`iteration ${it}: synthesized ${counts.generated}, parsed ${counts.parsed}, passed filters ${counts.passed_filters}, kept by dedup ${counts.kept_dedup} (dropped ${JSON.stringify(counts.dropped_dedup)}), references agreed ${counts.references_agreed}`);
  return problems;
}

/** Screened rows that dedup or decontamination dropped, by kind. */
export function dedupCounts(rows: readonly ScreenRow[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rows) if (r.dedup && !r.dedup.kept) out[r.dedup.kind!] = (out[r.dedup.kind!] ?? 0) + 1;
  return out;
}

/** The policy's pass rate on each of the iteration's problems, over countable samples (as self-play pairs count them). */
export function passRateStage(itx: RunContext, it: number): void {
  if (itx.problems.train.every((p) => itx.journal.has(unitId(it, PASSRATE, p.id)))) return;
  const { groups } = countableGroups(sampleOutcomes(itx, it), itx.cfg.pairs.validity.invalid);
  const byId = new Map(groups.map((g) => [g.promptId, g.samples]));
  itx.journal.record(itx.problems.train.map((p) => {
    const s = byId.get(p.id) ?? [];
    const correct = s.filter((x) => x.passed).length;
    const rec: PassRateRecord = { problem_id: p.id, pass_rate: s.length ? correct / s.length : null, correct, counted: s.length, samples: itx.cfg.rollout.samples_per_prompt };
    return { id: unitId(it, PASSRATE, p.id), stage: PASSRATE, iteration: it, result: rec };
  }));
}

/** Every generation unit of the iteration with what became of it, its teacher agreement and pass rate. */
export function candidates(ctx: RunContext, it: number): ProposerCandidate[] {
  const screen = new Map(screenStage(ctx, it).map((r) => [r.unit, r]));
  return ctx.journal.list<GenerationRecord>(P_GENERATE, it).map(({ id, result: g }) => {
    const s = screen.get(id);
    const vote = s?.kept ? ctx.journal.get<VoteRecord>(voteUnit(s.id)) : undefined;
    const rate = vote?.kept ? ctx.journal.get<PassRateRecord>(unitId(it, PASSRATE, s!.id))?.pass_rate ?? undefined : undefined;
    const outcome: CandidateOutcome = !g.ok ? "malformed" : !s ? "malformed" : s.filters.failed.length ? "filtered"
      : !s.kept ? (s.dedup?.kind === "contaminated" ? "contaminated" : "duplicate") : vote && !vote.kept ? "low_agreement" : "kept";
    const detail = !g.ok ? g.reason : s?.filters.failed.map((f) => f.filter).join(",") || s?.dedup?.kind;
    return { id, set: g.index, text: g.text, outcome, ...(detail ? { detail } : {}), ...(s ? { problem_id: s.id, problem: s.problem } : {}), ...(vote ? { agreement: vote.agreement } : {}), ...(rate !== undefined ? { pass_rate: rate } : {}) };
  });
}

/** The iteration's proposer pairs and learnable yield: one unit, so a resumed run trains on the same pairs. */
export async function proposerPairsStage(ctx: RunContext, it: number): Promise<ProposerPairsRecord> {
  const id = unitId(it, P_PAIRS);
  const done = ctx.journal.get<ProposerPairsRecord>(id);
  if (done) return done;
  const o = ctx.cfg.proposer.pairs;
  const cands = candidates(ctx, it);
  const pairs = (await proposerPairBuilder(o.builder, ctx.configDir))(cands, o);
  const by_reason: Record<string, number> = {};
  for (const p of pairs) by_reason[p.reason] = (by_reason[p.reason] ?? 0) + 1;
  const rolled = cands.filter((c) => c.pass_rate !== undefined);
  const rec: ProposerPairsRecord = {
    pairs, yield: learnableYield(cands, o), by_reason,
    learnable_of_rolled_out: { learnable: learnableYield(rolled, o).learnable, total: rolled.length },
  };
  ctx.journal.record([{ id, stage: P_PAIRS, iteration: it, result: rec }]);
  return rec;
}

interface Tokenized {
  prompt: number[];
  chosen: number[];
  rejected: number[];
}

/** p's prompt and its own two texts, tokenized as p read and wrote them (EOS after a finished text). */
async function tokenizePairs(ctx: RunContext, px: ProposerContext, it: number, pairs: ProposerPair[]): Promise<Map<string, Tokenized>> {
  const gen = (unit: string) => ctx.journal.get<GenerationRecord>(unit)!;
  const inputs = pairs.flatMap((p) => (["chosen", "rejected"] as const).map((side) => {
    const g = gen(p[side]);
    return { id: `${p.id}/${side}`, text: promptInput(ctx.cfg.synthesis.templates, g.concepts), parts: [g.text], appendEos: g.finish_reason !== "length" };
  }));
  const tok = await tokenizeParts(px.pool, inputs);
  return new Map(pairs.map((p) => [p.id, { prompt: tok.get(`${p.id}/chosen`)!.prompt, chosen: tok.get(`${p.id}/chosen`)!.parts[0]!, rejected: tok.get(`${p.id}/rejected`)!.parts[0]! }]));
}

/** log p(chosen), log p(rejected) under p before its update (the DPO reference), one unit per pair. */
async function proposerRefStage(ctx: RunContext, px: ProposerContext, it: number, pairs: ProposerPair[], tok: Map<string, Tokenized>): Promise<void> {
  const todo = pairs.filter((p) => !ctx.journal.has(unitId(it, P_REF, p.id)));
  if (todo.length === 0) return;
  const items = todo.flatMap((p) => (["chosen", "rejected"] as const).map((side) => ({ id: `${p.id}/${side}`, promptTokenIds: tok.get(p.id)!.prompt, completionTokenIds: tok.get(p.id)![side] })));
  const res = await px.pool.run(0, (rpc) => rpc.score({ items }, DEADLINE_MS));
  const logp = new Map(res.results.map((r) => [r.id, r.sumLogprob]));
  ctx.journal.record(todo.map((p) => ({ id: unitId(it, P_REF, p.id), stage: P_REF, iteration: it, result: { chosen_logp: logp.get(`${p.id}/chosen`)!, rejected_logp: logp.get(`${p.id}/rejected`)! } })));
}

/** p's DPO update on the iteration's pairs: dpo.ts's update unit, under p's own unit name, checkpoints and train settings. */
export async function proposerUpdateStage(ctx: RunContext, px: ProposerContext, it: number, pairs: ProposerPair[]): Promise<UpdateRecord | undefined> {
  if (pairs.length === 0) return undefined;
  const done = ctx.journal.get<UpdateRecord>(unitId(it, P_UPDATE));
  if (done) return done;
  const tok = await tokenizePairs(ctx, px, it, pairs);
  await proposerRefStage(ctx, px, it, pairs, tok);
  const t = ctx.cfg.proposer.train;
  const pctx: RunContext = { ...ctx, pool: px.pool, cfg: { ...ctx.cfg, train: { ...ctx.cfg.train, ...t, max_tokens_per_micro_batch: 0 } } };
  const examples: TrainExample[] = pairs.map((p) => {
    const x = tok.get(p.id)!;
    const ref = ctx.journal.get<{ chosen_logp: number; rejected_logp: number }>(unitId(it, P_REF, p.id))!;
    return {
      promptTokenIds: x.prompt, completionTokenIds: [], chosenTokenIds: x.chosen, rejectedTokenIds: x.rejected,
      refChosenLogp: ref.chosen_logp, refRejectedLogp: ref.rejected_logp, advantage: 0, weight: 1, oldLogprobs: [], refLogprobs: [],
    };
  });
  const plan = { label: "proposer DPO", loss: LossKind.DPO, hyper: { beta: t.beta }, batches: proposerBatches(examples, t, ctx.cfg.seed, it), unit: { id: unitId(it, P_UPDATE), stage: P_UPDATE }, checkpointDir: checkpointDir(ctx) };
  return updateUnit(pctx, it, plan, px.pool.checkpointStep);
}

/** epochs × a seeded shuffle of the examples, cut into batches: the same for a resumed run. */
export function proposerBatches<T>(examples: T[], t: { epochs: number; batch_size: number }, seed: number, it: number): T[][] {
  const order: T[] = [];
  for (let e = 0; e < t.epochs; e++) order.push(...shuffled(examples, unitSeed(seed, P_UPDATE, it, e)));
  const batches: T[][] = [];
  for (let i = 0; i < order.length; i += t.batch_size) batches.push(order.slice(i, i + t.batch_size));
  return batches;
}

// ---- proposer.algorithm: grpo (R-Zero's reward) ----

export interface ProposerGroupsRecord {
  groups: ProposerGrpoGroup[];
  /** Concept sets whose rewards were all equal (no signal). */
  dropped: number;
}

/** The iteration's rewards and advantages per generation unit: one unit, so a resumed run trains on the same numbers. */
export function proposerGroupsStage(ctx: RunContext, it: number): ProposerGroupsRecord {
  const id = unitId(it, P_GROUPS);
  const done = ctx.journal.get<ProposerGroupsRecord>(id);
  if (done) return done;
  const rec = proposerGroups(candidates(ctx, it), ctx.cfg.proposer.reward, ctx.cfg.train.grpo.advantage);
  ctx.journal.record([{ id, stage: P_GROUPS, iteration: it, result: rec }]);
  return rec;
}

/** p's prompt and one of its texts as token ids, as p read and wrote them (EOS after a finished text). */
async function tokenizeGenerations(ctx: RunContext, px: ProposerContext, units: string[]): Promise<Map<string, { prompt: number[]; completion: number[] }>> {
  const inputs = units.map((unit) => {
    const g = ctx.journal.get<GenerationRecord>(unit)!;
    return { id: unit, text: promptInput(ctx.cfg.synthesis.templates, g.concepts), parts: [g.text], appendEos: g.finish_reason !== "length" };
  });
  const tok = await tokenizeParts(px.pool, inputs);
  return new Map(units.map((u) => [u, { prompt: tok.get(u)!.prompt, completion: tok.get(u)!.parts[0]! }]));
}

/**
 * p's per-token log-probs of its own texts at its sampling temperature, before the update (GRPO's old policy:
 * p has not changed since it wrote them). One unit per concept set, so a resumed run scores only what is missing.
 */
async function proposerOldStage(ctx: RunContext, px: ProposerContext, it: number, groups: ProposerGrpoGroup[], tok: Map<string, { prompt: number[]; completion: number[] }>): Promise<void> {
  for (const g of groups.filter((x) => !ctx.journal.has(oldUnit(it, x.set)))) {
    const items = g.samples.map((x) => ({ id: x.id, promptTokenIds: tok.get(x.id)!.prompt, completionTokenIds: tok.get(x.id)!.completion }));
    const req = { items, returnTokenLogprobs: true, logitTemperature: ctx.cfg.proposer.generate.sampling.temperature || 1 };
    const res = await px.pool.run(0, (rpc) => rpc.score(req, DEADLINE_MS));
    const logprobs = Object.fromEntries(res.results.map((r) => [r.id, r.tokenLogprobs]));
    ctx.journal.record([{ id: oldUnit(it, g.set), stage: P_OLD, iteration: it, result: { logprobs } }]);
  }
}
const oldUnit = (it: number, set: number) => unitId(it, P_OLD, setTag(set));

/** GRPO examples: p's prompt, its text, the group-normalised advantage and the old per-token log-probs. */
export function proposerGrpoExamples(
  groups: ProposerGrpoGroup[],
  tok: Map<string, { prompt: number[]; completion: number[] }>,
  old: (set: number) => Record<string, number[]>,
  kl: boolean,
): TrainExample[] {
  return groups.flatMap((g) => g.samples.map((x) => {
    const t = tok.get(x.id)!;
    const logprobs = old(g.set)[x.id];
    if (!logprobs || logprobs.length !== t.completion.length) throw new Error(`proposer GRPO: ${x.id} has ${logprobs?.length ?? "no"} old log-probs for ${t.completion.length} tokens`);
    return {
      promptTokenIds: t.prompt, completionTokenIds: t.completion, chosenTokenIds: [], rejectedTokenIds: [],
      refChosenLogp: 0, refRejectedLogp: 0, advantage: x.advantage, weight: 1, oldLogprobs: logprobs, refLogprobs: kl ? logprobs : [],
    };
  }));
}

/** p's GRPO update on the iteration's rewards: the same update unit, checkpoints and train settings as the DPO proposer. */
export async function proposerGrpoUpdateStage(ctx: RunContext, px: ProposerContext, it: number): Promise<UpdateRecord | undefined> {
  const done = ctx.journal.get<UpdateRecord>(unitId(it, P_UPDATE));
  if (done) return done;
  const { groups } = proposerGroupsStage(ctx, it);
  if (groups.length === 0) return undefined;
  const tok = await tokenizeGenerations(ctx, px, groups.flatMap((g) => g.samples.map((x) => x.id)));
  await proposerOldStage(ctx, px, it, groups, tok);
  const t = ctx.cfg.proposer.train;
  const g = ctx.cfg.train.grpo;
  const pctx: RunContext = { ...ctx, pool: px.pool, cfg: { ...ctx.cfg, train: { ...ctx.cfg.train, ...t, max_tokens_per_micro_batch: 0 } } };
  const old = (set: number) => ctx.journal.get<{ logprobs: Record<string, number[]> }>(oldUnit(it, set))!.logprobs;
  // The proposer's KL term stays as it was: to p's weights at the start of the iteration (its old log-probs),
  // in the loss only; the frozen reference and kl_in: reward are the policy's (src/train/grpo.ts).
  const klCoef = g.kl_in === "loss" ? g.kl_coef : 0;
  const examples = proposerGrpoExamples(groups, tok, old, klCoef > 0);
  const hyper = {
    clipLow: g.clip_low, clipHigh: g.clip_high, klCoef, klEstimator: g.kl_estimator,
    lossAggregation: g.loss_aggregation, logitTemperature: ctx.cfg.proposer.generate.sampling.temperature || 1,
  };
  const plan = { label: "proposer GRPO", loss: LossKind.GRPO, hyper, batches: proposerBatches(examples, t, ctx.cfg.seed, it), unit: { id: unitId(it, P_UPDATE), stage: P_UPDATE }, checkpointDir: checkpointDir(ctx) };
  return updateUnit(pctx, it, plan, px.pool.checkpointStep);
}
