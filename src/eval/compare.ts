// Paired comparison of two sets of eval results (rows per problem and sample), per benchmark: the
// difference in mean accuracy with a bootstrap CI over problems, a paired sign-flip test, the problems
// that flipped, response lengths and a power note. Pure: a CLI, a report or a dashboard can call it.
import { ConfigError } from "../config/errors.js";
import { bootstrapMeanCI, mean, minimumDetectableDiff, sampleSd, signFlipTest } from "./stats.js";

/** One graded sample, as `promptcot eval` exports it (other tools may write the same fields). */
export interface ResultRow {
  benchmark: string;
  problem_id: string;
  sample_idx: number;
  correct: boolean;
  extracted?: string | null;
  response_tokens?: number | null;
  finish_reason?: string | null;
  checkpoint?: string | null;
}

export interface CompareOptions {
  labelA?: string;
  labelB?: string;
  seed?: number;
  /** Bootstrap resamples for the CI. */
  reps?: number;
  /** Random sign patterns when the sign-flip test cannot enumerate them all. */
  testReps?: number;
  /** Compare the problems both sides have instead of refusing problems present on one side only. */
  allowUnpaired?: boolean;
}

export interface LengthStats {
  samples: number;
  /** null when the rows carry no response_tokens. */
  mean: number | null;
  median: number | null;
  p90: number | null;
  mean_correct: number | null;
  mean_incorrect: number | null;
  /** Fraction of samples cut at max_tokens (finish_reason "length"). */
  truncated: number;
}

export interface BenchmarkComparison {
  benchmark: string;
  a: string;
  b: string;
  problems: number;
  samples_a: number;
  samples_b: number;
  a_mean: number;
  b_mean: number;
  /** b_mean - a_mean. */
  diff: number;
  ci_low: number;
  ci_high: number;
  p_value: number;
  test: string;
  /** Problems B solved at least once that A never solved, and the reverse. */
  gained: string[];
  lost: string[];
  improved: number;
  worsened: number;
  per_problem: { id: string; a: number; b: number }[];
  length: { a: LengthStats; b: LengthStats };
  power: { sd_diff: number; mde_80: number; mde_80_4x_samples: number; note: string };
  /** Problems left out because only one side has them (only with allowUnpaired). */
  unpaired: { only_a: string[]; only_b: string[] };
}

export interface Comparison {
  a: string;
  b: string;
  benchmarks: BenchmarkComparison[];
  notes: string[];
}

type PerProblem = Map<string, ResultRow[]>;

/** Results that cannot be compared as given (exit 2 from the CLI: the fix is in the input). */
export class CompareInputError extends ConfigError {
  override name = "CompareInputError";

  override format(): string {
    return `error: ${this.message}`;
  }
}

export function compareResults(a: ResultRow[], b: ResultRow[], opts: CompareOptions = {}): Comparison {
  const labelA = opts.labelA ?? firstCheckpoint(a) ?? "A";
  const labelB = opts.labelB ?? firstCheckpoint(b) ?? "B";
  const [ga, gb] = [groupRows(a, labelA), groupRows(b, labelB)];
  const notes: string[] = [];
  const names = [...new Set([...ga.keys(), ...gb.keys()])].sort();
  const out: BenchmarkComparison[] = [];
  for (const name of names) {
    const [pa, pb] = [ga.get(name), gb.get(name)];
    if (!pa || !pb) {
      const missing = pa ? labelB : labelA;
      if (!opts.allowUnpaired) throw new CompareInputError(`benchmark '${name}' has no results in ${missing}; evaluate it there too, or pass --allow-unpaired to compare only shared benchmarks`);
      notes.push(`benchmark '${name}' skipped: no results in ${missing}`);
      continue;
    }
    out.push(compareBenchmark(name, pa, pb, labelA, labelB, opts));
  }
  if (out.length === 0) throw new CompareInputError(`no benchmark has results on both sides (${labelA}: ${[...ga.keys()].join(", ") || "none"}; ${labelB}: ${[...gb.keys()].join(", ") || "none"})`);
  return { a: labelA, b: labelB, benchmarks: out, notes };
}

function firstCheckpoint(rows: ResultRow[]): string | undefined {
  return rows.find((r) => r.checkpoint)?.checkpoint ?? undefined;
}

/** benchmark -> problem -> rows; a repeated (problem, sample) is an error, since it would weigh twice. */
function groupRows(rows: ResultRow[], label: string): Map<string, PerProblem> {
  const out = new Map<string, PerProblem>();
  const seen = new Set<string>();
  for (const r of rows) {
    const key = JSON.stringify([r.benchmark, r.problem_id, r.sample_idx]);
    if (seen.has(key)) throw new CompareInputError(`${label}: sample ${r.sample_idx} of problem '${r.problem_id}' (${r.benchmark}) appears twice; remove the duplicate row`);
    seen.add(key);
    const bench = out.get(r.benchmark) ?? new Map<string, ResultRow[]>();
    out.set(r.benchmark, bench);
    bench.set(r.problem_id, [...(bench.get(r.problem_id) ?? []), r]);
  }
  return out;
}

function compareBenchmark(name: string, pa: PerProblem, pb: PerProblem, labelA: string, labelB: string, o: CompareOptions): BenchmarkComparison {
  const onlyA = [...pa.keys()].filter((id) => !pb.has(id)).sort(byId);
  const onlyB = [...pb.keys()].filter((id) => !pa.has(id)).sort(byId);
  if ((onlyA.length || onlyB.length) && !o.allowUnpaired) {
    const side = (ids: string[], l: string) => (ids.length ? `only in ${l}: ${few(ids)}` : "");
    throw new CompareInputError(
      `${name}: problems present on one side only (${[side(onlyA, labelA), side(onlyB, labelB)].filter(Boolean).join("; ")}); ` +
        `a missing problem is not a 0. Evaluate the same problems, or pass --allow-unpaired to compare the ${[...pa.keys()].filter((id) => pb.has(id)).length} shared ones`,
    );
  }
  const ids = [...pa.keys()].filter((id) => pb.has(id)).sort(byId);
  if (ids.length === 0) throw new CompareInputError(`${name}: ${labelA} and ${labelB} share no problem`);
  const acc = (rows: ResultRow[]) => mean(rows.map((r) => (r.correct ? 1 : 0)));
  const per = ids.map((id) => ({ id, a: acc(pa.get(id)!), b: acc(pb.get(id)!) }));
  const diffs = per.map((p) => p.b - p.a);
  const seed = o.seed ?? 0;
  const ci = bootstrapMeanCI(diffs, seed, o.reps ?? 4000);
  const test = signFlipTest(diffs, seed, o.testReps ?? 20_000);
  const rowsOf = (side: PerProblem) => ids.flatMap((id) => side.get(id)!);
  const [ra, rb] = [rowsOf(pa), rowsOf(pb)];
  return {
    benchmark: name,
    a: labelA,
    b: labelB,
    problems: ids.length,
    samples_a: ra.length,
    samples_b: rb.length,
    a_mean: mean(per.map((p) => p.a)),
    b_mean: mean(per.map((p) => p.b)),
    diff: mean(diffs),
    ci_low: ci.lo,
    ci_high: ci.hi,
    p_value: test.p,
    test: test.method,
    gained: per.filter((p) => p.a === 0 && p.b > 0).map((p) => p.id),
    lost: per.filter((p) => p.a > 0 && p.b === 0).map((p) => p.id),
    improved: diffs.filter((d) => d > 0).length,
    worsened: diffs.filter((d) => d < 0).length,
    per_problem: per,
    length: { a: lengthStats(ra), b: lengthStats(rb) },
    power: powerNote(per, diffs, ids.map((id) => [pa.get(id)!.length, pb.get(id)!.length])),
    unpaired: { only_a: onlyA, only_b: onlyB },
  };
}

function lengthStats(rows: ResultRow[]): LengthStats {
  const tokens = (rs: ResultRow[]) => rs.map((r) => r.response_tokens).filter((t): t is number => typeof t === "number");
  const all = tokens(rows).sort((x, y) => x - y);
  const m = (xs: number[]) => (xs.length ? mean(xs) : null);
  const at = (q: number) => (all.length ? all[Math.min(all.length - 1, Math.floor(q * all.length))]! : null);
  return {
    samples: rows.length,
    mean: m(all),
    median: all.length ? (all[(all.length - 1) >> 1]! + all[all.length >> 1]!) / 2 : null,
    p90: at(0.9),
    mean_correct: m(tokens(rows.filter((r) => r.correct))),
    mean_incorrect: m(tokens(rows.filter((r) => !r.correct))),
    truncated: rows.filter((r) => r.finish_reason === "length").length / rows.length,
  };
}

/**
 * The smallest difference detectable at 80% power from the observed per-problem differences, and what
 * 4x the samples per problem would buy: only the within-problem (sampling) part of the variance shrinks
 * with more samples; the between-problem part needs more problems.
 */
function powerNote(per: { a: number; b: number }[], diffs: number[], counts: number[][]): BenchmarkComparison["power"] {
  const n = diffs.length;
  const sd = n > 1 ? sampleSd(diffs) : NaN;
  const within = mean(per.map((p, i) => binomialVar(p.a, counts[i]![0]!) + binomialVar(p.b, counts[i]![1]!)));
  const total = sd * sd;
  const between = Math.max(0, total - within);
  const mde = minimumDetectableDiff(sd, n);
  const mde4 = minimumDetectableDiff(Math.sqrt(between + within / 4), n);
  const k = Math.round(mean(counts.map((c) => c[0]!)));
  let note: string;
  if (!Number.isFinite(mde)) note = `${n} problem(s): too few to estimate the variance of the difference`;
  else if (mde === 0) note = `no problem's accuracy differs between the two sides, so no variance to size a test by`;
  else {
    note = `with ${n} problems × ~${k} samples, a true difference smaller than ±${pct(mde)} points is likely (>20%) to go undetected ` +
      `(80% power, two-sided α = 0.05, from the observed per-problem sd ${sd.toFixed(3)}); 4× the samples per problem: ±${pct(mde4)}`;
  }
  return { sd_diff: sd, mde_80: mde, mde_80_4x_samples: mde4, note };
}

/** Unbiased estimate of the variance of a per-problem mean of k Bernoulli samples. */
function binomialVar(p: number, k: number): number {
  return k > 1 ? (p * (1 - p)) / (k - 1) : 0;
}

const pct = (x: number) => (100 * x).toFixed(1);

function byId(x: string, y: string): number {
  return x.localeCompare(y, "en", { numeric: true });
}

function few(ids: string[]): string {
  return `${ids.slice(0, 5).join(", ")}${ids.length > 5 ? ` and ${ids.length - 5} more` : ""}`;
}
