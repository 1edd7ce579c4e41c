// Difficulty, diversity and coverage of a synthesized problem set (issue 7 item 9), as markdown and JSON.
// Every figure carries the number of problems it is computed over; missing inputs give null, not zero.
import type { ConceptPool } from "./concepts.js";

export interface ReportProblem {
  id: string;
  concepts: string[];
  /** The policy's pass rate through the graders, where answers exist. */
  pass_rate?: number;
  mean_response_tokens?: number;
}

export interface SynthesisReportInput {
  problems: ReportProblem[];
  /** One per problem, in order (Embed RPC); enables the diversity figures. */
  problemEmbeddings?: Float32Array[];
  /** A reference set (e.g. the seed problems or a benchmark) to measure distance to. */
  referenceEmbeddings?: Float32Array[];
  pool: ConceptPool;
  /** Per pool concept, the share of sampled sets containing it (concepts.ts expectedInclusion); else frequency-proportional. */
  expectedInclusion?: ArrayLike<number>;
  /** Rows in the over-used table and never-used examples (default 10). */
  top?: number;
}

interface Mean {
  mean: number | null;
  n: number;
}

export interface OverUse {
  concept: string;
  count: number;
  expected: number;
  /** null when the sampler never picks the concept (expected 0). */
  ratio: number | null;
}

export interface SynthesisReportJson {
  problems: number;
  difficulty: { pass_rate: Mean & { never_solved: number; always_solved: number }; response_tokens: Mean };
  diversity: { n: number; mean_pairwise_distance: number | null; reference_n: number; distance_to_reference: number | null };
  coverage: {
    pool_concepts: number;
    used: number;
    never_used: number;
    never_used_examples: string[];
    unknown_concepts: number;
    expected_basis: "sampler" | "pool frequency";
    over_used: OverUse[];
    gini: number | null;
    normalized_entropy: number | null;
  };
}

function meanOf(values: (number | undefined)[]): Mean {
  const xs = values.filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  return { mean: xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null, n: xs.length };
}

function difficulty(problems: ReportProblem[]): SynthesisReportJson["difficulty"] {
  const pass = meanOf(problems.map((p) => p.pass_rate));
  const rates = problems.map((p) => p.pass_rate).filter((r): r is number => typeof r === "number");
  return {
    pass_rate: { ...pass, never_solved: rates.filter((r) => r === 0).length, always_solved: rates.filter((r) => r === 1).length },
    response_tokens: meanOf(problems.map((p) => p.mean_response_tokens)),
  };
}

function unitSum(vectors: Float32Array[]): Float64Array {
  const sum = new Float64Array(vectors[0]?.length ?? 0);
  for (const v of vectors) {
    const n = norm(v) || 1;
    v.forEach((x, d) => (sum[d]! += x / n));
  }
  return sum;
}

function norm(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  return Math.sqrt(s);
}

/** Mean of 1 - cos over pairs i < j, in O(n d): for unit vectors, sum over i != j of cos = |sum|^2 - n. */
export function meanPairwiseDistance(vectors: Float32Array[]): number | null {
  const n = vectors.length;
  if (n < 2) return null;
  const s = norm(unitSum(vectors));
  return 1 - (s * s - n) / (n * (n - 1));
}

/** 1 - cos(mean of a's unit vectors, mean of b's): how far the set's centre sits from the reference's. */
export function centroidDistance(a: Float32Array[], b: Float32Array[]): number | null {
  if (!a.length || !b.length) return null;
  const [x, y] = [unitSum(a), unitSum(b)];
  if (x.length !== y.length) throw new Error(`embedding sizes differ: ${x.length} (problems) vs ${y.length} (reference)`);
  let dot = 0;
  x.forEach((v, d) => (dot += v * y[d]!));
  return 1 - dot / ((norm(x) || 1) * (norm(y) || 1));
}

function diversity(input: SynthesisReportInput): SynthesisReportJson["diversity"] {
  const emb = input.problemEmbeddings ?? [];
  const ref = input.referenceEmbeddings ?? [];
  if (emb.length && emb.length !== input.problems.length) {
    throw new Error(`problemEmbeddings has ${emb.length} vectors for ${input.problems.length} problems; pass one per problem, in order`);
  }
  return { n: emb.length, mean_pairwise_distance: meanPairwiseDistance(emb), reference_n: ref.length, distance_to_reference: centroidDistance(emb, ref) };
}

/** Gini coefficient of non-negative counts: 0 when all equal, (n-1)/n when one holds everything. */
export function gini(counts: ArrayLike<number>): number | null {
  const xs = Array.from(counts).sort((a, b) => a - b);
  const total = xs.reduce((a, b) => a + b, 0);
  if (!xs.length || total === 0) return null;
  const n = xs.length;
  return xs.reduce((acc, x, i) => acc + (2 * (i + 1) - n - 1) * x, 0) / (n * total);
}

/** Shannon entropy of the usage distribution over the pool, divided by its maximum ln(pool size). */
export function normalizedEntropy(counts: ArrayLike<number>): number | null {
  const xs = Array.from(counts);
  const total = xs.reduce((a, b) => a + b, 0);
  if (xs.length < 2 || total === 0) return null;
  const h = -xs.reduce((acc, c) => (c > 0 ? acc + (c / total) * Math.log(c / total) : acc), 0);
  return h / Math.log(xs.length);
}

/** Problems per pool concept; `slots` = (problem, pool concept) pairs, the total the expectation spreads. */
function usage(input: SynthesisReportInput): { counts: Float64Array; unknown: Set<string>; slots: number } {
  const counts = new Float64Array(input.pool.concepts.length);
  const unknown = new Set<string>();
  let slots = 0;
  for (const p of input.problems) {
    for (const c of new Set(p.concepts)) {
      const i = input.pool.index.get(c);
      if (i === undefined) {
        unknown.add(c);
        continue;
      }
      counts[i]! += 1;
      slots++;
    }
  }
  return { counts, unknown, slots };
}

function expectedCounts(input: SynthesisReportInput, slots: number): Float64Array {
  const { pool, problems, expectedInclusion } = input;
  if (expectedInclusion) {
    if (expectedInclusion.length !== pool.concepts.length) {
      throw new Error(`expectedInclusion has ${expectedInclusion.length} entries for ${pool.concepts.length} pool concepts`);
    }
    return Float64Array.from(expectedInclusion, (s) => s * problems.length);
  }
  const total = Array.from(pool.freq).reduce((a, b) => a + b, 0) || 1;
  return Float64Array.from(pool.freq, (f) => (slots * f) / total);
}

function coverage(input: SynthesisReportInput): SynthesisReportJson["coverage"] {
  const top = input.top ?? 10;
  const { pool } = input;
  const { counts, unknown, slots } = usage(input);
  const expected = expectedCounts(input, slots);
  const idx = pool.concepts.map((_, i) => i);
  const never = idx.filter((i) => counts[i] === 0).sort((a, b) => pool.freq[b]! - pool.freq[a]! || a - b);
  const over = idx
    .filter((i) => counts[i]! > expected[i]!)
    .map((i) => ({ concept: pool.concepts[i]!, count: counts[i]!, expected: expected[i]!, ratio: expected[i]! > 0 ? counts[i]! / expected[i]! : null }))
    .sort((a, b) => b.count - a.count || (b.ratio ?? Infinity) - (a.ratio ?? Infinity))
    .slice(0, top);
  return {
    pool_concepts: pool.concepts.length,
    used: pool.concepts.length - never.length,
    never_used: never.length,
    never_used_examples: never.slice(0, top).map((i) => pool.concepts[i]!),
    unknown_concepts: unknown.size,
    expected_basis: input.expectedInclusion ? "sampler" : "pool frequency",
    over_used: over,
    gini: gini(counts),
    normalized_entropy: normalizedEntropy(counts),
  };
}

const fmt = (x: number | null, digits = 3): string => (x === null ? "n/a" : x.toFixed(digits));

function markdown(r: SynthesisReportJson): string {
  const d = r.difficulty;
  const c = r.coverage;
  const lines = [
    `# Synthesized set: difficulty, diversity, coverage`,
    ``,
    `${r.problems} problems.`,
    ``,
    `## Difficulty`,
    ``,
    `| figure | value | over |`,
    `| --- | --- | --- |`,
    `| policy pass rate (mean) | ${fmt(d.pass_rate.mean)} | ${d.pass_rate.n} problems |`,
    `| never solved (pass rate 0) | ${d.pass_rate.never_solved} | ${d.pass_rate.n} problems |`,
    `| always solved (pass rate 1) | ${d.pass_rate.always_solved} | ${d.pass_rate.n} problems |`,
    `| mean response length (tokens) | ${fmt(d.response_tokens.mean, 1)} | ${d.response_tokens.n} problems |`,
    ``,
    `## Diversity (cosine distance of mean-pooled embeddings)`,
    ``,
    `| figure | value | over |`,
    `| --- | --- | --- |`,
    `| mean pairwise distance within the set | ${fmt(r.diversity.mean_pairwise_distance)} | ${r.diversity.n} problems |`,
    `| distance of the set's mean embedding to the reference's | ${fmt(r.diversity.distance_to_reference)} | ${r.diversity.n} vs ${r.diversity.reference_n} |`,
    ``,
    `## Coverage of the concept pool`,
    ``,
    `${c.used} of ${c.pool_concepts} pool concepts used; ${c.never_used} never used; ${c.unknown_concepts} concepts outside the pool. ` +
      `Gini of usage ${fmt(c.gini)} (0 = even), normalized entropy ${fmt(c.normalized_entropy)} (1 = even).`,
    ``,
    c.never_used ? `Never used (most frequent in the pool first): ${c.never_used_examples.map((x) => `\`${x}\``).join(", ")}${c.never_used > c.never_used_examples.length ? ", …" : ""}` : `Every pool concept was used.`,
    ``,
    `Over-used (count above expected; expected from ${c.expected_basis}):`,
    ``,
    `| concept | count | expected | ratio |`,
    `| --- | --- | --- | --- |`,
    ...c.over_used.map((o) => `| ${o.concept.replaceAll("|", "\\|")} | ${o.count} | ${fmt(o.expected, 2)} | ${fmt(o.ratio, 2)} |`),
    ``,
  ];
  return lines.join("\n");
}

export function synthesisReport(input: SynthesisReportInput): { markdown: string; json: SynthesisReportJson } {
  const json: SynthesisReportJson = {
    problems: input.problems.length,
    difficulty: difficulty(input.problems),
    diversity: diversity(input),
    coverage: coverage(input),
  };
  return { markdown: markdown(json), json };
}
