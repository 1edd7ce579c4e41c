// What a synthesis run leaves: artifacts/synthesis/problems.jsonl (kept problems with PromptCoT's field
// names and their provenance), report.md / report.json (EM figures per iteration, counts by reason, and
// the difficulty/diversity/coverage report), and the dry-run plan. All derived from the journal.
import { closeSync, mkdirSync, openSync, renameSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { Experiment } from "../config/schema.js";
import { ANNOTATE_STAGE, annotationCounts, SEED_STAGE } from "./cold-start.js";
import type { ConceptPool } from "./concepts.js";
import type { SynthContext } from "./context.js";
import type { EmSummary } from "./em.js";
import type { EmTrack } from "./em-track.js";
import { GENERATE_STAGE, SCREEN_STAGE, type ScreenRecord } from "./generate.js";
import type { GenerationRecord } from "./provenance.js";
import { synthesisReport, type ReportProblem } from "./report.js";
import { withSuffix } from "./templates.js";

export function planLines(cfg: Experiment, runDir: string): string[] {
  const s = cfg.synthesis;
  const model = (o: { source?: string }) => o.source ?? cfg.model.source;
  return [
    `run directory: ${runDir}`,
    `task: synthesis (${s.domain}); rationale model q: ${model(s.rationale_model)}; prompt model p: ${model(s.prompt_model)}; ${cfg.workers.count} worker(s) per role`,
    `seeds: ${s.seeds.kind === "generated" ? `${s.seeds.count} generated (seed ${cfg.seed})` : `up to ${s.seeds.count} from ${s.seeds.path}`}`,
    `cold start: annotate each seed with ${s.annotator.source ?? "p's base weights"} (≤${s.annotator.sampling.max_tokens} tokens, T=${s.annotator.sampling.temperature})${s.annotator.use_known_concepts ? "; known concepts kept" : ""}`,
    `warm start: SFT q and p on the triples (lr ${s.warm_start.learning_rate}, batch ${s.warm_start.batch_size}, ${s.warm_start.epochs} epoch(s))`,
    ...Array.from({ length: s.em.iterations }, (_, i) =>
      s.em.estep === "fixed"
        ? `EM ${i + 1}: E-step fixed (ablation): keep the cold-start rationales, q not trained; M-step SFT p on them (lr ${s.em.train.learning_rate}, batch ${s.em.train.batch_size})`
        : `EM ${i + 1}: E-step ${s.em.k} rationales per problem from q (T=${s.em.sampling.temperature}, ≤${s.em.sampling.max_tokens} tokens) + the previous one, R under p, keep best → SFT q ` +
          `(lr ${s.em.train.learning_rate}, batch ${s.em.train.batch_size}); M-step greedy rationale from q → SFT p`,
    ),
    ...(s.em.track.count > 0
      ? [`EM tracking: ${s.em.track.count} fixed (c, x) after warm start and each iteration: NLL of x's content given q's greedy z and the cold-start z; bound on log p(x | c) from ${s.em.track.samples} samples of q`]
      : []),
    `generate: ${s.generate.count} concept sets (${s.concepts.sampler}, ${s.concepts.size} concepts${s.concepts.sampler === "promptcot" ? `, τ ${s.concepts.tau}` : ""}) × ${s.generate.samples_per_set} sample(s) (≤${s.generate.sampling.max_tokens} tokens, T=${s.generate.sampling.temperature})`,
    `filters: proof, ill-posed → dedup (Jaccard ≥ ${s.dedup.threshold})${s.dedup.against.length ? ` + decontamination against ${s.dedup.against.join(", ")}` : ""} → artifacts/synthesis/problems.jsonl, report.md`,
  ];
}

/** Writes the kept problems in generation order, streamed to a temp file renamed into place; returns their ids and concepts. */
export function writeProblems(ctx: SynthContext): ReportProblem[] {
  const dir = join(ctx.runDir, "artifacts", "synthesis");
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "problems.jsonl");
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w");
  const kept: ReportProblem[] = [];
  try {
    for (const { result: s } of ctx.journal.iterate<ScreenRecord>(SCREEN_STAGE, 0)) {
      if (!s.kept) continue;
      const g = ctx.journal.get<GenerationRecord>(s.generation_unit)!;
      const row = {
        id: s.id, prompt: withSuffix(ctx.cfg.synthesis.templates, ctx.cfg.synthesis.domain, g.problem!), problem: g.problem, concepts: g.concepts,
        ...(g.level ? { level: g.level } : {}), rationale: g.rationale, source: `promptcot-synthesis/${ctx.cfg.name}`,
        synthesizer: g.synthesizer, concept_seed: g.concept_seed, sampling_seed: g.sampling_seed, generation_unit: s.generation_unit,
      };
      writeSync(fd, `${JSON.stringify(row)}\n`);
      kept.push({ id: s.id, concepts: g.concepts });
    }
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  return kept;
}

export interface OutcomeCounts {
  generated: number;
  parsed: number;
  malformed: Record<string, number>;
  filtered: Record<string, number>;
  deduped: Record<string, number>;
  kept: number;
}

export function outcomeCounts(ctx: SynthContext): OutcomeCounts {
  const c: OutcomeCounts = { generated: 0, parsed: 0, malformed: {}, filtered: {}, deduped: {}, kept: 0 };
  const inc = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);
  for (const { result: g } of ctx.journal.iterate<GenerationRecord>(GENERATE_STAGE, 0)) {
    c.generated++;
    if (g.ok) c.parsed++;
    else inc(c.malformed, g.reason!);
  }
  for (const { result: s } of ctx.journal.iterate<ScreenRecord>(SCREEN_STAGE, 0)) {
    for (const f of s.filters.failed) inc(c.filtered, f.filter);
    if (s.dedup && !s.dedup.kept) inc(c.deduped, s.dedup.kind!);
    if (s.kept) c.kept++;
  }
  return c;
}

const f3 = (x: number | null | undefined) => (x === null || x === undefined ? "n/a" : x.toFixed(3));
const reasons = (m: Record<string, number>) => Object.entries(m).map(([k, n]) => `${k} ${n}`).join(", ") || "none";

export interface ReportInput {
  em: EmSummary[];
  /** Figures on the fixed tracked set, iteration 0 (after warm start) upwards; empty when em.track.count is 0. */
  emTrack: EmTrack[];
  pool: ConceptPool;
  kept: ReportProblem[];
  resumed: boolean;
  wallSeconds: number;
}

/**
 * Embeds texts through p's worker (mean-pooled hidden states, the Embed RPC), `size` per call. Not journaled:
 * derived report data, recomputed on a rerun. The problems' text is read back from the journal by the caller.
 */
async function embedTexts(ctx: SynthContext, texts: Iterable<string>, size = 64): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  let batch: string[] = [];
  const flush = async () => {
    if (!batch.length) return;
    const b = batch;
    const res = await ctx.pools.prompt.run(0, (rpc) => rpc.embed({ texts: b }, 600_000));
    out.push(...res.embeddings.map((e) => Float32Array.from(e.values)));
    batch = [];
  };
  for (const t of texts) {
    batch.push(t);
    if (batch.length === size) await flush();
  }
  await flush();
  return out;
}

function* keptTexts(ctx: SynthContext): Generator<string> {
  for (const { result: s } of ctx.journal.iterate<ScreenRecord>(SCREEN_STAGE, 0)) {
    if (s.kept) yield ctx.journal.get<GenerationRecord>(s.generation_unit)!.problem!;
  }
}

function* seedTexts(ctx: SynthContext): Generator<string> {
  for (const { result } of ctx.journal.iterate<{ prompt: string }>(SEED_STAGE, 0)) yield result.prompt;
}

export async function renderSynthesisReport(ctx: SynthContext, r: ReportInput): Promise<string> {
  const counts = outcomeCounts(ctx);
  const annotations = annotationCounts(ctx);
  // Diversity: the kept problems against each other and against the seed problems (the reference set).
  const problemEmbeddings = await embedTexts(ctx, keptTexts(ctx));
  const referenceEmbeddings = await embedTexts(ctx, seedTexts(ctx));
  const quality = synthesisReport({ problems: r.kept, pool: r.pool, problemEmbeddings, referenceEmbeddings });
  const md = [
    `# Synthesis report: ${ctx.cfg.name}`,
    "",
    `Wall time ${r.wallSeconds.toFixed(1)} s${r.resumed ? " (this resumed part only)" : ""}. Seeds ${ctx.journal.count(SEED_STAGE)}; ` +
      `annotations ${ctx.journal.count(ANNOTATE_STAGE)}: ${reasons(annotations)}.`,
    "",
    "## EM",
    "",
    "| iteration | problems | mean best R | mean NLL(x) per token | rationales changed | previous kept | no valid sample | M-step fallbacks | q loss | p loss | wall s |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...r.em.map((e) =>
      `| ${e.iteration} | ${e.units} | ${f3(e.mean_best_R)} | ${f3(e.mean_nll_x)} | ${e.changed} | ${e.kept_previous ?? "n/a"} | ${e.no_valid_candidate} | ${e.mstep_fallbacks} | ${f3(e.q_update.mean_loss)} | ${f3(e.p_update.mean_loss)} | ${e.wall_s.toFixed(1)} |`,
    ),
    "",
    "R = log p(z | c) + log p(x | z, c) of the kept rationale under p at the start of the iteration; NLL(x) is of the seed problem given (c, kept z). " +
      "Candidate K+1 of each E-step is the previous kept rationale ('previous kept' counts the units where it won). " +
      `E-step: ${ctx.cfg.synthesis.em.estep === "fixed" ? "fixed (ablation: the cold-start rationales throughout, q not trained)" : "sample"}.`,
    "Malformed E-step candidates by reason: " + (r.em.map((e) => `it${e.iteration}: ${reasons(e.malformed_candidates)}`).join("; ") || "n/a"),
    "",
    ...trackLines(r.emTrack),
    "## Generation",
    "",
    `Generated ${counts.generated}; parsed ${counts.parsed}; malformed ${counts.generated - counts.parsed} (${reasons(counts.malformed)}); ` +
      `dropped by filters ${Object.values(counts.filtered).reduce((a, b) => a + b, 0)} (${reasons(counts.filtered)}); ` +
      `dropped by dedup ${Object.values(counts.deduped).reduce((a, b) => a + b, 0)} (${reasons(counts.deduped)}); kept ${counts.kept}.`,
    "",
    "## Wall time by stage",
    "",
    ...[...ctx.timer.seconds].map(([k, s]) => `- ${k}: ${s.toFixed(1)} s`),
    "",
    quality.markdown,
  ].join("\n");
  const json = { name: ctx.cfg.name, wall_seconds: r.wallSeconds, resumed: r.resumed, annotations, em: r.em, em_track: r.emTrack, counts, quality: quality.json };
  writeAtomic(join(ctx.runDir, "report.md"), `${md}\n`);
  writeAtomic(join(ctx.runDir, "report.json"), `${JSON.stringify(json, null, 2)}\n`);
  return md;
}

/** The comparable EM figures: one row per iteration on the same tracked (c, x). */
export function trackLines(track: EmTrack[]): string[] {
  if (track.length === 0) return [];
  return [
    `### EM on a fixed set of ${track[0]!.items} (c, x)`,
    "",
    "| after | NLL(x)/content token, greedy z from q | greedy z malformed | NLL(x)/content token, cold-start z | bound on log p(x\\|c), nats | items with a bound | samples well-formed |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...track.map((t) =>
      `| ${t.iteration === 0 ? "warm start" : `EM ${t.iteration}`} | ${f3(t.mean_nll_greedy)} | ${t.greedy_malformed} | ${f3(t.mean_nll_cold)} | ${f3(t.mean_bound)} | ${t.bound_items}/${t.items} | ${t.samples_ok}/${t.items * t.samples} |`,
    ),
    "",
    "Under p and q as they stand after that step. NLL counts x's tokens between the problem markers only. The bound is " +
      "logmeanexp_k[log p(z_k, x | c) − log q(z_k | c, x)] over the samples z_k ~ q at temperature 1 (a malformed sample weighs 0), " +
      "averaged over the items with at least one well-formed sample; EM should raise it.",
    "",
  ];
}

function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}
