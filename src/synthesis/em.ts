// Warm start and EM for the rationale model q(z | c, x) and the prompt model p(z, x | c) (PromptCoT 2.0 §3).
// E-step: K rationales from q per (c, x), plus the previous iteration's kept one as candidate K+1 (so with a
// fixed p the kept R cannot fall), each scored R = log p(z | c) + log p(x | z, c) under p; the best is kept
// and q is fine-tuned on it. With em.estep "fixed" (an ablation) the cold-start rationale is kept throughout. M-step: q decodes a rationale greedily per (c, x); p is fine-tuned on
// (c → z, x). Every (c, x) is its own journal unit in each step; each fine-tune is one journaled update.
import { join } from "node:path";
import { unitId, unitSeed } from "../experiment/ids.js";
import { Progress } from "../telemetry/progress.js";
import { sftUpdate, type SftHyper, type SftUpdateRecord } from "../train/sft.js";
import { ANNOTATE_STAGE, SEED_STAGE, triples, type Annotation, type Triple } from "./cold-start.js";
import type { Role, SynthContext } from "./context.js";
import type { SeedProblem } from "./seeds.js";
import { parseRationale, promptInput, promptTargetParts, rationaleInput, rationaleTarget } from "./templates.js";
import { trackIteration } from "./em-track.js";
import { generateEach, sftExamples, syncPool, tokenizeParts, type GenItem } from "./worker-io.js";

export const ESTEP = "synth/estep";
export const MSTEP = "synth/mstep";
export const EM_SUMMARY = "synth/em";
export const updateStage = (role: Role) => `synth/update/${role}`;
const BATCH = 64;
const DEADLINE_MS = 60 * 60 * 1000;

export interface Candidate {
  z: string;
  ok: boolean;
  reason?: string;
  /** log p(z | c), log p(x | z, c) and their sum R under p; absent for a malformed sample. */
  logp_z?: number;
  logp_x?: number;
  R?: number;
  n_x?: number;
  /** Candidate K+1: the previous iteration's kept rationale (the cold-start one for e = 1), not a sample. */
  previous?: boolean;
}

export interface EStepRecord {
  seed_id: string;
  concepts: string[];
  level?: string;
  candidates: Candidate[];
  /** Index of the kept candidate (highest R, ties to the lowest index); the last candidate is the previous z. */
  best: number;
  z: string;
  R: number | null;
  /** Token-mean NLL of x under p given (c, best z). */
  nll_x: number | null;
  changed: boolean;
}

export interface MStepRecord {
  seed_id: string;
  concepts: string[];
  level?: string;
  z: string;
  ok: boolean;
  reason?: string;
  /** The greedy decode was malformed, so p trains on the E-step's kept rationale instead. */
  fallback: boolean;
}

export interface EmSummary {
  iteration: number;
  units: number;
  mean_best_R: number | null;
  mean_nll_x: number | null;
  changed: number;
  /** Units where no sampled candidate was well-formed (the previous z was kept). */
  no_valid_candidate: number;
  /** Units whose kept candidate is the previous z (candidate K+1). */
  kept_previous: number;
  malformed_candidates: Record<string, number>;
  mstep_fallbacks: number;
  wall_s: number;
  q_update: { steps: number; mean_loss: number | null };
  p_update: { steps: number; mean_loss: number | null };
}

const seedOf = (ctx: SynthContext, id: string) => ctx.journal.get<SeedProblem>(unitId(0, SEED_STAGE, id))!;

function hyperOf(t: { learning_rate: number; batch_size: number; micro_batch_size: number; max_tokens_per_micro_batch: number; epochs: number; max_grad_norm: number; weight_decay: number }): SftHyper {
  return { ...t };
}

function update(ctx: SynthContext, role: Role, iteration: number, ids: string[], hyper: SftHyper, toInput: (unitId: string) => { text: string; parts: string[] }, label: string): Promise<SftUpdateRecord> {
  const pool = ctx.pools[role];
  const stage = updateStage(role);
  return sftUpdate({
    journal: ctx.journal, pool, metrics: ctx.metrics, log: ctx.log, label,
    unit: { id: unitId(iteration, stage), stage, iteration },
    exampleIds: ids,
    load: (batch) => sftExamples(pool, batch.map((id) => ({ id, ...toInput(id) }))),
    hyper, seed: unitSeed(ctx.cfg.seed, stage, iteration),
    checkpointDir: join(ctx.runDir, "checkpoints", role), resumeEverySteps: ctx.cfg.train.resume_every_steps,
  });
}

const pInput = (ctx: SynthContext, concepts: string[], level: string | undefined, z: string, x: string) => {
  const parts = promptTargetParts(z, x);
  return { text: promptInput(ctx.cfg.synthesis.templates, concepts, level), parts: [parts.rationale, parts.problem] };
};
const qInput = (ctx: SynthContext, concepts: string[], x: string, z: string) => ({
  text: rationaleInput(ctx.cfg.synthesis.templates, concepts, x),
  parts: [rationaleTarget(z)],
});

/** SFT of q and p on the cold-start triples (loss on target tokens only). */
export async function warmStart(ctx: SynthContext): Promise<void> {
  const ids = Array.from(triples(ctx), (t) => unitId(0, ANNOTATE_STAGE, t.seed_id));
  if (ids.length === 0) throw new Error("cold start kept no annotation, so there is nothing to warm-start on; see the annotation counts by reason in the log");
  const h = hyperOf(ctx.cfg.synthesis.warm_start);
  const triple = (id: string) => {
    const a = ctx.journal.get<Annotation>(id)!;
    return { a, x: seedOf(ctx, a.seed_id).prompt };
  };
  await update(ctx, "rationale", 0, ids, h, (id) => { const { a, x } = triple(id); return qInput(ctx, a.concepts, x, a.rationale); }, "warm start q");
  await update(ctx, "prompt", 0, ids, h, (id) => { const { a, x } = triple(id); return pInput(ctx, a.concepts, a.level, a.rationale, x); }, "warm start p");
  await Promise.all([syncPool(ctx.pools.rationale), syncPool(ctx.pools.prompt)]);
}

/** The rationale each triple held before iteration e: the cold-start one, or the previous E-step's pick. */
function previousZ(ctx: SynthContext, e: number, t: Triple): string {
  return e === 1 ? t.rationale : ctx.journal.get<EStepRecord>(unitId(e - 1, ESTEP, t.seed_id))!.z;
}

export async function eStep(ctx: SynthContext, e: number): Promise<void> {
  const em = ctx.cfg.synthesis.em;
  if (em.estep === "fixed") return fixedEStep(ctx, e);
  const todo = (t: Triple) => !ctx.journal.has(unitId(e, ESTEP, t.seed_id));
  const progress = new Progress(`EM ${e}: E-step (${em.k} rationales per problem)`, count(triples(ctx), todo));
  for (const chunk of chunks(triples(ctx), todo, BATCH)) {
    const batch = new Map(chunk.map((t) => [unitId(e, ESTEP, t.seed_id), t]));
    const items: GenItem[] = [...batch].map(([id, t]) => ({
      id,
      text: rationaleInput(ctx.cfg.synthesis.templates, t.concepts, t.problem),
      seeds: Array.from({ length: em.k }, (_, s) => unitSeed(ctx.cfg.seed, ESTEP, e, t.seed_id, s)),
    }));
    await generateEach(ctx.pools.rationale, ctx.journal, ESTEP, items, em.sampling, (it) => ctx.journal.has(it.id), async (it, samples) => {
      const t = batch.get(it.id)!;
      const prev = previousZ(ctx, e, t);
      const parsed = [...samples.map((s) => parseRationale(s.text, s.finishReason)), { ok: true as const, rationale: prev }];
      const candidates = await scoreCandidates(ctx, it.id, t, parsed);
      candidates[candidates.length - 1]!.previous = true;
      const rec = pickBest(t, candidates, prev);
      if (ctx.journal.record([{ id: it.id, stage: ESTEP, iteration: e, result: rec }])) progress.tick(1);
    });
  }
  progress.finish();
  await update(ctx, "rationale", e, unitIds(ctx, e, ESTEP), hyperOf(em.train), (id) => {
    const r = ctx.journal.get<EStepRecord>(id)!;
    return qInput(ctx, r.concepts, seedOf(ctx, r.seed_id).prompt, r.z);
  }, `EM ${e}: q update`);
  await syncPool(ctx.pools.rationale);
}

/** The ablation's E-step: the cold-start rationale, scored under p (for R), kept; no sampling, no q update. */
async function fixedEStep(ctx: SynthContext, e: number): Promise<void> {
  const todo = (t: Triple) => !ctx.journal.has(unitId(e, ESTEP, t.seed_id));
  for (const chunk of chunks(triples(ctx), todo, BATCH)) {
    for (const t of chunk) {
      const id = unitId(e, ESTEP, t.seed_id);
      const candidates = await scoreCandidates(ctx, id, t, [{ ok: true, rationale: t.rationale }]);
      candidates[0]!.previous = true;
      ctx.journal.record([{ id, stage: ESTEP, iteration: e, result: pickBest(t, candidates, t.rationale) }]);
    }
  }
}

/** Triples passing `keep`, `n` at a time, read from the journal as they are needed. */
function* chunks(source: Iterable<Triple>, keep: (t: Triple) => boolean, n: number): Generator<Triple[]> {
  let out: Triple[] = [];
  for (const t of source) {
    if (!keep(t)) continue;
    out.push(t);
    if (out.length === n) (yield out, (out = []));
  }
  if (out.length) yield out;
}

function count(source: Iterable<Triple>, keep: (t: Triple) => boolean): number {
  let n = 0;
  for (const t of source) if (keep(t)) n++;
  return n;
}

/** The unit ids of a step for every triple (ids only: an update loads its examples batch by batch). */
const unitIds = (ctx: SynthContext, e: number, stage: string): string[] => Array.from(triples(ctx), (t) => unitId(e, stage, t.seed_id));

/** Scores each well-formed candidate z as R = log p(z, x | c) under p, split into its two terms. */
async function scoreCandidates(ctx: SynthContext, unit: string, t: Triple, parsed: ReturnType<typeof parseRationale>[]): Promise<Candidate[]> {
  const ok = parsed.flatMap((p, k) => (p.ok ? [{ k, z: p.rationale }] : []));
  const tok = ok.length
    ? await tokenizeParts(ctx.pools.prompt, ok.map((c) => ({ id: `${unit}/${c.k}`, ...pInput(ctx, t.concepts, t.level, c.z, t.problem), appendEos: false })))
    : new Map();
  const res = ok.length
    ? await ctx.pools.prompt.run(0, (rpc) =>
        rpc.score({
          items: ok.map((c) => { const x = tok.get(`${unit}/${c.k}`)!; return { id: String(c.k), promptTokenIds: x.prompt, completionTokenIds: [...x.parts[0]!, ...x.parts[1]!] }; }),
          returnTokenLogprobs: true,
        }, DEADLINE_MS),
      )
    : { results: [] };
  const byK = new Map(res.results.map((r) => [Number(r.id), r]));
  return parsed.map((p, k) => {
    if (!p.ok) return { z: "", ok: false, reason: p.reason };
    const nz = tok.get(`${unit}/${k}`)!.parts[0]!.length;
    const lp = byK.get(k)!.tokenLogprobs;
    const logp_z = sum(lp.slice(0, nz));
    const logp_x = sum(lp.slice(nz));
    return { z: p.rationale, ok: true, logp_z, logp_x, R: logp_z + logp_x, n_x: lp.length - nz };
  });
}

const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);

/** argmax R over well-formed candidates, ties to the lowest sample index. */
export function pickBest(t: Triple, candidates: Candidate[], prevZ: string): EStepRecord {
  let best = -1;
  for (const [k, c] of candidates.entries()) if (c.ok && (best < 0 || c.R! > candidates[best]!.R!)) best = k;
  const c = best >= 0 ? candidates[best]! : undefined;
  const z = c ? c.z : prevZ;
  return {
    seed_id: t.seed_id, concepts: t.concepts, level: t.level, candidates, best, z,
    R: c ? c.R! : null,
    nll_x: c ? -c.logp_x! / Math.max(c.n_x!, 1) : null,
    changed: z !== prevZ,
  };
}

export async function mStep(ctx: SynthContext, e: number): Promise<void> {
  const em = ctx.cfg.synthesis.em;
  if (em.estep === "fixed") keepEStepZ(ctx, e);
  const todo = (t: Triple) => !ctx.journal.has(unitId(e, MSTEP, t.seed_id));
  const progress = new Progress(`EM ${e}: M-step (greedy rationales)`, count(triples(ctx), todo));
  const greedy = { ...em.sampling, temperature: 0 };
  for (const chunk of chunks(triples(ctx), todo, BATCH)) {
    const batch = new Map(chunk.map((t) => [unitId(e, MSTEP, t.seed_id), t]));
    const items: GenItem[] = [...batch].map(([id, t]) => ({ id, text: rationaleInput(ctx.cfg.synthesis.templates, t.concepts, t.problem), seeds: [unitSeed(ctx.cfg.seed, MSTEP, e, t.seed_id)] }));
    await generateEach(ctx.pools.rationale, ctx.journal, MSTEP, items, greedy, (it) => ctx.journal.has(it.id), async (it, [s]) => {
      const t = batch.get(it.id)!;
      const p = parseRationale(s!.text, s!.finishReason);
      const kept = ctx.journal.get<EStepRecord>(unitId(e, ESTEP, t.seed_id))!.z;
      const rec: MStepRecord = { seed_id: t.seed_id, concepts: t.concepts, level: t.level, z: p.ok ? p.rationale : kept, ok: p.ok, reason: p.ok ? undefined : p.reason, fallback: !p.ok };
      if (ctx.journal.record([{ id: it.id, stage: MSTEP, iteration: e, result: rec }])) progress.tick(1);
    });
  }
  progress.finish();
  await update(ctx, "prompt", e, unitIds(ctx, e, MSTEP), hyperOf(em.train), (id) => {
    const r = ctx.journal.get<MStepRecord>(id)!;
    return pInput(ctx, r.concepts, r.level, r.z, seedOf(ctx, r.seed_id).prompt);
  }, `EM ${e}: p update`);
  await syncPool(ctx.pools.prompt);
}

/** The ablation's M-step units: p trains on the E-step's (cold-start) rationale; q decodes nothing. */
function keepEStepZ(ctx: SynthContext, e: number): void {
  for (const t of triples(ctx)) {
    const id = unitId(e, MSTEP, t.seed_id);
    if (ctx.journal.has(id)) continue;
    const z = ctx.journal.get<EStepRecord>(unitId(e, ESTEP, t.seed_id))!.z;
    const rec: MStepRecord = { seed_id: t.seed_id, concepts: t.concepts, level: t.level, z, ok: true, fallback: false };
    ctx.journal.record([{ id, stage: MSTEP, iteration: e, result: rec }]);
  }
}

/** Runs EM iterations (each resumable), stopping at em.iterations or when mean best R gains < em.min_gain. */
export async function emLoop(ctx: SynthContext): Promise<EmSummary[]> {
  const em = ctx.cfg.synthesis.em;
  const out: EmSummary[] = [];
  // Iteration 0's figures need the warm-started models: a journal from before tracking existed, resumed after
  // EM 1 updated them, gets none rather than figures of later models under the warm start's label.
  if (!(["rationale", "prompt"] as const).some((r) => ctx.journal.has(unitId(1, updateStage(r))))) await ctx.timer.time("EM tracking", () => trackIteration(ctx, 0));
  for (let e = 1; e <= em.iterations; e++) {
    const id = unitId(e, EM_SUMMARY);
    let s = ctx.journal.get<EmSummary>(id);
    if (!s) {
      if (ctx.journal.getMeta(`synth_em_start_${e}`) === undefined) ctx.journal.setMeta(`synth_em_start_${e}`, String(Date.now()));
      await ctx.timer.time("E-step", () => eStep(ctx, e));
      await ctx.timer.time("M-step", () => mStep(ctx, e));
      await ctx.timer.time("EM tracking", () => trackIteration(ctx, e));
      s = summarize(ctx, e, (Date.now() - Number(ctx.journal.getMeta(`synth_em_start_${e}`))) / 1000);
      ctx.journal.record([{ id, stage: EM_SUMMARY, iteration: e, result: s }]);
      ctx.metrics.write({ kind: "em", ...s });
    }
    out.push(s);
    ctx.log(`EM ${e}: mean best R ${fmt(s.mean_best_R)}, mean NLL(x) ${fmt(s.mean_nll_x)}, changed ${s.changed}/${s.units}, ${s.wall_s.toFixed(1)} s`);
    const prev = out.at(-2);
    if (prev && prev.mean_best_R !== null && s.mean_best_R !== null && em.min_gain > 0 && s.mean_best_R - prev.mean_best_R < em.min_gain) {
      ctx.log(`EM stops after iteration ${e}: gain ${(s.mean_best_R - prev.mean_best_R).toFixed(3)} < min_gain ${em.min_gain}`);
      break;
    }
  }
  return out;
}

const fmt = (x: number | null) => (x === null ? "n/a" : x.toFixed(3));
const mean = (xs: number[]) => (xs.length ? sum(xs) / xs.length : null);

function summarize(ctx: SynthContext, e: number, wall: number): EmSummary {
  const R: number[] = [];
  const nll: number[] = [];
  const malformed: Record<string, number> = {};
  let units = 0, changed = 0, none = 0, keptPrev = 0, fallbacks = 0;
  for (const { result: r } of ctx.journal.iterate<EStepRecord>(ESTEP, e)) {
    units++;
    if (r.R !== null) R.push(r.R);
    if (r.nll_x !== null) nll.push(r.nll_x);
    if (r.changed) changed++;
    if (r.candidates.some((c) => !c.previous) && !r.candidates.some((c) => c.ok && !c.previous)) none++;
    if (r.candidates[r.best]?.previous) keptPrev++;
    for (const c of r.candidates) if (!c.ok) malformed[c.reason!] = (malformed[c.reason!] ?? 0) + 1;
  }
  for (const { result: m } of ctx.journal.iterate<MStepRecord>(MSTEP, e)) if (m.fallback) fallbacks++;
  const upd = (role: Role) => {
    const u = ctx.journal.get<SftUpdateRecord>(unitId(e, updateStage(role)));
    if (!u) return { steps: 0, mean_loss: null }; // em.estep "fixed": q is not updated
    return { steps: u.steps.length, mean_loss: mean(u.steps.map((s) => s.loss ?? NaN)) };
  };
  return {
    iteration: e, units, mean_best_R: mean(R), mean_nll_x: mean(nll), changed, no_valid_candidate: none, kept_previous: keptPrev,
    malformed_candidates: malformed, mstep_fallbacks: fallbacks, wall_s: wall, q_update: upd("rationale"), p_update: upd("prompt"),
  };
}
