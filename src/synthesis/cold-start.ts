// Cold start: seed problems are journaled (one unit each), then an annotator writes, per seed, the concepts
// it tests and a rationale ("how an expert designed this problem"). Known concepts (the seed generator's,
// or a JSONL row's own) are kept and only the rationale is asked for. A malformed annotation is dropped
// with its reason and its seed takes no further part, unless annotator.on_malformed is "template": then a
// seed with known concepts gets templates.fallback_rationale, recorded as fallback_<reason>. With
// annotator.trim_truncated, a known-concepts rationale cut by max_tokens is first cut back to its last
// complete sentence and kept (recorded as "trimmed").
import type { WorkerPool } from "../cluster/pool.js";
import { unitId, unitSeed } from "../experiment/ids.js";
import { Progress } from "../telemetry/progress.js";
import type { SynthContext } from "./context.js";
import { generatedSeeds, readSeedsJsonl, type SeedProblem } from "./seeds.js";
import { annotateInput, fallbackRationale, parseAnnotation, trimToSentence } from "./templates.js";
import { generateEach, type GenItem } from "./worker-io.js";
import { resolve } from "node:path";

export const SEED_STAGE = "synth/seed";
export const ANNOTATE_STAGE = "synth/annotate";
const BATCH = 256;

export interface Annotation {
  seed_id: string;
  ok: boolean;
  reason?: string;
  /** "known": the seed's own concepts; "annotator": parsed from the annotation. */
  concepts_source: "known" | "annotator";
  concepts: string[];
  rationale: string;
  level?: string;
  text: string;
  finish_reason: string;
  sampling_seed: number;
}

/** Journals the seed problems (streamed from a file, or generated), in batches; a resume re-reads the
 *  source and the journal ignores the seeds it already holds, until the "all seeds in" mark is set. */
export async function seedStage(ctx: SynthContext): Promise<number> {
  const s = ctx.cfg.synthesis.seeds;
  const mark = ctx.journal.getMeta("synth_seeds");
  if (mark !== undefined) return Number(mark);
  const source: AsyncIterable<SeedProblem> | Iterable<SeedProblem> =
    s.kind === "generated" ? generatedSeeds(ctx.cfg.seed, s.count) : readSeedsJsonl(resolve(ctx.configDir, s.path!), s.count);
  let batch: SeedProblem[] = [];
  let n = 0;
  const seen = new Set<string>();
  for await (const p of source) {
    if (seen.has(p.id)) throw new Error(`seed id '${p.id}' appears twice in ${s.path ?? "the generated seeds"}; ids must be unique`);
    seen.add(p.id);
    batch.push(p);
    n++;
    if (batch.length === BATCH) (ctx.journal.record(batch.map(toRow)), (batch = []));
  }
  ctx.journal.record(batch.map(toRow));
  if (n === 0) throw new Error(`no seed problems in ${s.path ?? "the generated seeds"}`);
  ctx.journal.setMeta("synth_seeds", String(n));
  return n;
}

const toRow = (p: SeedProblem) => ({ id: unitId(0, SEED_STAGE, p.id), stage: SEED_STAGE, iteration: 0, result: p });

/** Annotates every seed without an annotation unit, in bounded batches, on `annotator` (base weights). */
export async function annotateStage(ctx: SynthContext, annotator: WorkerPool): Promise<void> {
  const a = ctx.cfg.synthesis.annotator;
  const t = ctx.cfg.synthesis.templates;
  const total = ctx.journal.count(SEED_STAGE);
  const progress = new Progress("cold start: annotate seeds", total - ctx.journal.count(ANNOTATE_STAGE));
  let batch: SeedProblem[] = [];
  const flush = async () => {
    const seeds = new Map(batch.map((p) => [p.id, p]));
    const items: GenItem[] = batch.map((p) => ({
      id: unitId(0, ANNOTATE_STAGE, p.id),
      text: annotateInput(t, p.prompt, known(ctx, p)),
      seeds: [unitSeed(ctx.cfg.seed, ANNOTATE_STAGE, p.id)],
    }));
    await generateEach(annotator, ctx.journal, ANNOTATE_STAGE, items, a.sampling, (it) => ctx.journal.has(it.id), async (it, [r]) => {
      const p = seeds.get(it.id.split("/").at(-1)!)!;
      const k = known(ctx, p);
      const parsed = parseAnnotation(r!.text, r!.finishReason, { known: k, minRationaleChars: a.min_rationale_chars, maxConcepts: a.max_concepts });
      const trimmed = !parsed.ok && parsed.reason === "truncated" && k && a.trim_truncated ? trimToSentence(r!.text) : undefined;
      const useTrimmed = trimmed !== undefined && trimmed.length >= a.min_rationale_chars;
      const fallback = !parsed.ok && !useTrimmed && k && a.on_malformed === "template";
      const rec: Annotation = {
        seed_id: p.id,
        ok: parsed.ok || useTrimmed || !!fallback,
        reason: parsed.ok ? undefined : useTrimmed ? "trimmed" : fallback ? `fallback_${parsed.reason}` : parsed.reason,
        concepts_source: k ? "known" : "annotator",
        concepts: parsed.ok ? parsed.concepts : (k ?? []),
        rationale: parsed.ok ? parsed.rationale : useTrimmed ? trimmed : fallback ? fallbackRationale(t, k) : "",
        level: p.level,
        text: r!.text,
        finish_reason: r!.finishReason,
        sampling_seed: it.seeds[0]!,
      };
      if (ctx.journal.record([{ id: it.id, stage: ANNOTATE_STAGE, iteration: 0, result: rec }])) progress.tick(1);
    });
    batch = [];
  };
  for (const row of ctx.journal.iterate<SeedProblem>(SEED_STAGE, 0)) {
    if (ctx.journal.has(unitId(0, ANNOTATE_STAGE, row.result.id))) continue;
    batch.push(row.result);
    if (batch.length === BATCH) await flush();
  }
  if (batch.length) await flush();
  progress.finish();
}

function known(ctx: SynthContext, p: SeedProblem): string[] | undefined {
  return ctx.cfg.synthesis.annotator.use_known_concepts && p.concepts?.length ? p.concepts : undefined;
}

/** A cold-start triple: the unit EM works on. */
export interface Triple {
  seed_id: string;
  concepts: string[];
  level?: string;
  problem: string;
  rationale: string;
}

/** Streams the (c, z, x) triples of well-formed annotations, joined with their seeds. */
export function* triples(ctx: SynthContext): Generator<Triple> {
  for (const row of ctx.journal.iterate<Annotation>(ANNOTATE_STAGE, 0)) {
    const a = row.result;
    if (!a.ok) continue;
    const seed = ctx.journal.get<SeedProblem>(unitId(0, SEED_STAGE, a.seed_id))!;
    yield { seed_id: a.seed_id, concepts: a.concepts, level: a.level, problem: seed.prompt, rationale: a.rationale };
  }
}

/** Annotation outcomes by reason ("ok" included), for the report. */
export function annotationCounts(ctx: SynthContext): Record<string, number> {
  const out: Record<string, number> = {};
  for (const row of ctx.journal.iterate<Annotation>(ANNOTATE_STAGE, 0)) {
    const k = row.result.reason ?? "ok";
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}
