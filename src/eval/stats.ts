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

/** Paired comparison of per-problem scores (same problems before and after). */
export function pairedComparison(before: number[], after: number[], seed = 0): PairedComparison {
  if (before.length !== after.length) throw new Error("paired comparison needs the same problems on both sides");
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
