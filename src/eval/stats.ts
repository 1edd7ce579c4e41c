// Statistics that tell a real gain from noise: intervals over problems, paired comparisons.
import { rng } from "../experiment/ids.js";

export const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

function quantile(sorted: number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** Percentile-bootstrap 95% CI of the mean, resampling problems (not samples: samples of one problem correlate). */
export function bootstrapMeanCI(xs: number[], seed = 0, reps = 2000): { lo: number; hi: number } {
  if (xs.length === 0) return { lo: NaN, hi: NaN };
  const r = rng(seed);
  const means: number[] = [];
  for (let b = 0; b < reps; b++) {
    let s = 0;
    for (let i = 0; i < xs.length; i++) s += xs[Math.floor(r() * xs.length)]!;
    means.push(s / xs.length);
  }
  means.sort((a, b) => a - b);
  return { lo: quantile(means, 0.025), hi: quantile(means, 0.975) };
}

/**
 * Unbiased pass@k of one problem from n samples with c correct (Chen et al. 2021, the Codex paper):
 * 1 - C(n-c, k) / C(n, k), the chance that k samples drawn without replacement include a correct one.
 * Computed as 1 - prod_{i=n-c+1..n} (1 - k/i): no factorials, so no overflow at any n.
 */
export function passAtK(n: number, c: number, k: number): number {
  const whole = (x: number) => Number.isInteger(x) && x >= 0;
  if (!whole(n) || !whole(c) || !whole(k) || c > n || k < 1 || k > n) {
    throw new Error(`pass@k needs whole numbers 0 <= c <= n and 1 <= k <= n (got n=${n}, c=${c}, k=${k})`);
  }
  if (n - c < k) return 1;
  let none = 1;
  for (let i = n - c + 1; i <= n; i++) none *= 1 - k / i;
  return 1 - none;
}

/** The k reported for n samples per problem: 1, then powers of two below n, then n. */
export function reportedKs(n: number): number[] {
  const ks: number[] = [];
  for (let k = 1; k < n; k *= 2) ks.push(k);
  ks.push(n);
  return ks;
}

export interface Estimate {
  value: number;
  ci: { lo: number; hi: number };
}

/** pass@k over problems with its percentile-bootstrap 95% CI (problems resampled). */
export function passAtKEstimate(counts: { n: number; c: number }[], k: number, seed = 0): Estimate {
  const per = counts.map(({ n, c }) => passAtK(n, c, k));
  return { value: mean(per), ci: bootstrapMeanCI(per, seed) };
}

export interface PairedComparison {
  n: number;
  before: number;
  after: number;
  delta: number;
  ci: { lo: number; hi: number };
  improved: number;
  worsened: number;
  /** True when the 95% CI of the paired difference excludes 0. */
  significant: boolean;
}

/**
 * Paired comparison of per-problem scores keyed by problem id. A problem on one side only is an error,
 * never a 0: a missing eval would otherwise read as a collapse (or, on the before side, as a gain).
 */
export function pairedByProblem(before: ReadonlyMap<string, number>, after: ReadonlyMap<string, number>, seed = 0): PairedComparison {
  const onlyBefore = [...before.keys()].filter((id) => !after.has(id));
  const onlyAfter = [...after.keys()].filter((id) => !before.has(id));
  if (onlyBefore.length || onlyAfter.length) {
    const list = (ids: string[]) => `${ids.slice(0, 5).join(", ")}${ids.length > 5 ? ` and ${ids.length - 5} more` : ""}`;
    throw new Error(
      `paired comparison needs the same problems on both sides: ` +
        [onlyBefore.length ? `missing after: ${list(onlyBefore)}` : "", onlyAfter.length ? `missing before: ${list(onlyAfter)}` : ""]
          .filter(Boolean)
          .join("; "),
    );
  }
  const ids = [...before.keys()];
  return pairedComparison(ids.map((i) => before.get(i)!), ids.map((i) => after.get(i)!), seed);
}

/** Paired comparison of per-problem scores (same problems before and after, in the same order). */
export function pairedComparison(before: number[], after: number[], seed = 0): PairedComparison {
  if (before.length !== after.length) throw new Error("paired comparison needs the same problems on both sides");
  if (before.length === 0) throw new Error("paired comparison of zero problems");
  const diffs = after.map((a, i) => a - before[i]!);
  const ci = bootstrapMeanCI(diffs, seed);
  return {
    n: diffs.length,
    before: mean(before),
    after: mean(after),
    delta: mean(diffs),
    ci,
    improved: diffs.filter((d) => d > 0).length,
    worsened: diffs.filter((d) => d < 0).length,
    significant: ci.lo > 0 || ci.hi < 0,
  };
}

export const sampleSd = (xs: number[]): number => {
  if (xs.length < 2) return NaN;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
};

/** Sign patterns are enumerated exactly up to this many nonzero differences (2^16 sums), sampled above. */
const EXACT_SIGN_FLIP_MAX = 16;

/**
 * Two-sided paired sign-flip (permutation) test over problems. Under "A and B are the same model", each
 * problem's difference is as likely to be d as -d (the samples are seed-paired, so the two sides are
 * exchangeable within a problem), so the observed |sum d| is ranked among the sums with random signs.
 * Exact when few problems differ; otherwise Monte Carlo with the (1 + hits) / (1 + reps) estimate, which
 * never reports p = 0 and keeps the test valid (P(p <= a) <= a under the null).
 */
export function signFlipTest(diffs: number[], seed = 0, reps = 10_000): { p: number; method: string } {
  const nz = diffs.filter((d) => d !== 0);
  const observed = Math.abs(nz.reduce((a, b) => a + b, 0));
  const tol = 1e-9 * (1 + nz.reduce((a, b) => a + Math.abs(b), 0));
  if (nz.length === 0) return { p: 1, method: "sign-flip permutation (no problem differs)" };
  if (nz.length <= EXACT_SIGN_FLIP_MAX) {
    let hits = 0;
    const total = 2 ** nz.length;
    for (let mask = 0; mask < total; mask++) {
      let s = 0;
      for (let i = 0; i < nz.length; i++) s += mask & (1 << i) ? -nz[i]! : nz[i]!;
      if (Math.abs(s) >= observed - tol) hits++;
    }
    return { p: hits / total, method: `sign-flip permutation, exact over ${total} sign patterns` };
  }
  const r = rng(seed);
  let hits = 0;
  for (let b = 0; b < reps; b++) {
    let s = 0;
    for (const d of nz) s += r() < 0.5 ? -d : d;
    if (Math.abs(s) >= observed - tol) hits++;
  }
  return { p: (1 + hits) / (1 + reps), method: `sign-flip permutation, ${reps} random sign patterns` };
}

const Z_TWO_SIDED_05 = 1.959963984540054;
const Z_POWER_80 = 0.8416212335729143;

/**
 * The smallest true mean difference a paired test over n problems detects with 80% power at two-sided
 * alpha = 0.05 (normal approximation): (z_.975 + z_.80) * sd / sqrt(n), sd being the per-problem
 * differences' standard deviation.
 */
export function minimumDetectableDiff(sdDiff: number, n: number): number {
  return ((Z_TWO_SIDED_05 + Z_POWER_80) * sdDiff) / Math.sqrt(n);
}
