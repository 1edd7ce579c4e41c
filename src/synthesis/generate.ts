// Generation with the trained prompt model: concept sets from the sampler, one unit per (set, sample),
// strict parsing (malformed output is journaled with its reason and dropped); then one screening pass
// over the parsed problems in unit order: filters, then dedup and decontamination, journaled per problem.
import { resolve } from "node:path";
import { pad, unitId, unitSeed } from "../experiment/ids.js";
import { Progress } from "../telemetry/progress.js";
import { conceptPoolFromSets, embedConcepts, promptcotSampler, readConceptPool, uniformSampler, type ConceptPool, type ConceptSampler } from "./concepts.js";
import { triples } from "./cold-start.js";
import type { SynthContext } from "./context.js";
import { Deduplicator, loadBenchmarks, type Verdict } from "./dedup/index.js";
import { illPosedFilter, proofFilter } from "./filters.js";
import { problemId, type DedupOutcome, type FilterOutcome, type GenerationRecord, type Synthesizer } from "./provenance.js";
import { parseGeneration, promptInput } from "./templates.js";
import { generateEach, type GenItem } from "./worker-io.js";
import { EM_SUMMARY } from "./em.js";

export const GENERATE_STAGE = "synth/generate";
export const SCREEN_STAGE = "synth/screen";
const BATCH = 256;

export async function conceptPool(ctx: SynthContext): Promise<ConceptPool> {
  const c = ctx.cfg.synthesis.concepts;
  if (c.pool_path) return readConceptPool(resolve(ctx.configDir, c.pool_path));
  return conceptPoolFromSets([...triples(ctx)].map((t) => ({ concepts: t.concepts, ...(t.level ? { level: t.level } : {}) })));
}

async function sampler(ctx: SynthContext, pool: ConceptPool): Promise<ConceptSampler> {
  const c = ctx.cfg.synthesis.concepts;
  if (c.sampler === "uniform") return uniformSampler(pool, c.size);
  const emb = await embedConcepts({ journal: ctx.journal, pool: ctx.pools.prompt, log: ctx.log }, pool);
  return promptcotSampler(pool, emb, { size: c.size, tau: c.tau });
}

export const generationUnit = (set: number, sample: number) => unitId(0, GENERATE_STAGE, pad(set, 6), sample);

/** p writes `count × samples_per_set` problems; each unit records its parse outcome and provenance. */
export async function generationStage(ctx: SynthContext, pool: ConceptPool): Promise<void> {
  const g = ctx.cfg.synthesis.generate;
  const n = g.samples_per_set;
  const ids = (set: number) => Array.from({ length: n }, (_, j) => generationUnit(set, j));
  const pending = Array.from({ length: g.count }, (_, i) => i).filter((i) => ids(i).some((id) => !ctx.journal.has(id)));
  if (pending.length === 0) return;
  const s = await sampler(ctx, pool);
  const synthesizer: Synthesizer = {
    checkpoint: ctx.pools.prompt.checkpoint ?? null,
    step: ctx.pools.prompt.checkpointStep,
    em_iteration: ctx.journal.count(EM_SUMMARY),
  };
  const progress = new Progress(`generate ${g.count * n} problems`, pending.length * n);
  for (let b = 0; b < pending.length; b += BATCH) {
    const sets = new Map<string, { set: number; seed: number; concepts: string[]; level?: string }>();
    const items: GenItem[] = pending.slice(b, b + BATCH).map((set) => {
      const seed = unitSeed(ctx.cfg.seed, "synth/concepts", set);
      const drawn = s.sample(seed);
      const id = `set-${pad(set, 6)}`;
      sets.set(id, { set, seed, concepts: drawn.concepts, level: drawn.level });
      return {
        id,
        text: promptInput(ctx.cfg.synthesis.templates, drawn.concepts, drawn.level),
        seeds: Array.from({ length: n }, (_, j) => unitSeed(ctx.cfg.seed, GENERATE_STAGE, set, j)),
      };
    });
    const isDone = (it: GenItem) => ids(sets.get(it.id)!.set).every((id) => ctx.journal.has(id));
    await generateEach(ctx.pools.prompt, ctx.journal, GENERATE_STAGE, items, g.sampling, isDone, async (it, samples) => {
      const d = sets.get(it.id)!;
      const rows = samples.map((r, j) => {
        const parsed = parseGeneration(r.text, r.finishReason);
        const rec: GenerationRecord = {
          index: d.set, concepts: d.concepts, ...(d.level ? { level: d.level } : {}), concept_seed: d.seed, sampling_seed: it.seeds[j]!,
          synthesizer, text: r.text, finish_reason: r.finishReason, ok: parsed.ok,
          ...(parsed.ok ? { id: problemId(parsed.problem), rationale: parsed.rationale, problem: parsed.problem } : { reason: parsed.reason }),
        };
        return { id: generationUnit(d.set, j), stage: GENERATE_STAGE, iteration: 0, result: rec };
      });
      progress.tick(ctx.journal.record(rows));
    });
  }
  progress.finish();
}

export interface ScreenRecord {
  id: string;
  generation_unit: string;
  filters: FilterOutcome;
  /** Absent when a filter dropped the problem (dedup sees only problems that passed the filters). */
  dedup?: DedupOutcome;
  kept: boolean;
}

/**
 * Filters then dedup, in generation-unit order. Dedup's memory of kept rows is not journaled, so an
 * interrupted pass is redone whole; verdicts are deterministic, and the journal keeps the first copy.
 */
export async function screenStage(ctx: SynthContext): Promise<void> {
  if (ctx.journal.getMeta("synth_screen_done") === "1") return;
  const d = ctx.cfg.synthesis.dedup;
  const benchmarks = d.against.length ? await loadBenchmarks(d.against.map((f) => resolve(ctx.configDir, f)), d.threshold) : undefined;
  const dedup = new Deduplicator({ threshold: d.threshold, ...(benchmarks ? { benchmarks } : {}) });
  let index = 0;
  let batch: { id: string; stage: string; iteration: number; result: ScreenRecord }[] = [];
  for (const row of ctx.journal.iterate<GenerationRecord>(GENERATE_STAGE, 0)) {
    const g = row.result;
    if (!g.ok) continue;
    const filters = runFilters(g.problem!);
    const rec: ScreenRecord = { id: g.id!, generation_unit: row.id, filters, kept: false };
    if (filters.failed.length === 0) {
      rec.dedup = dedupOutcome(dedup.check(g.problem!, { index, line: index + 1, id: row.id }));
      index++;
      rec.kept = rec.dedup.kept;
    }
    batch.push({ id: unitId(0, SCREEN_STAGE, row.id.split("/").slice(-2).join("-")), stage: SCREEN_STAGE, iteration: 0, result: rec });
    if (batch.length === BATCH) (ctx.journal.record(batch), (batch = []));
  }
  ctx.journal.record(batch);
  ctx.journal.setMeta("synth_screen_done", "1");
}

/** Every filter that applies before answers exist; all are run, so provenance names each one that failed. */
export function runFilters(problem: string): FilterOutcome {
  const out: FilterOutcome = { passed: [], failed: [] };
  for (const [name, f] of [["proof", proofFilter], ["ill_posed", illPosedFilter]] as const) {
    const r = f(problem);
    if (r.keep) out.passed.push(name);
    else out.failed.push({ filter: name, reason: r.detail ? `${r.reason}: ${r.detail}` : r.reason });
  }
  return out;
}

export function dedupOutcome(v: Verdict): DedupOutcome {
  if (v.keep) return { kept: true };
  if (v.reason === "contaminated") {
    const { reason: _r, keep: _k, ...detail } = v;
    return { kept: false, kind: "contaminated", detail: JSON.stringify(detail) };
  }
  return {
    kept: false,
    kind: v.reason,
    duplicate_of: v.of.id ?? `row ${v.of.index}`,
    ...(v.reason === "near_duplicate" ? { detail: `Jaccard ${v.jaccard.toFixed(3)}` } : {}),
  };
}
