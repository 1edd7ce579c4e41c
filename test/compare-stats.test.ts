// The comparison's statistics on constructed data: a real gap is found, identical inputs give zero, the
// bootstrap CI covers a known true difference at about its nominal rate, and null p-values are uniform.
import { describe, expect, it } from "vitest";
import { compareResults, type ResultRow } from "../src/eval/compare.js";
import { signFlipTest } from "../src/eval/stats.js";
import { rng, unitSeed } from "../src/experiment/ids.js";

/** Rows for problems with the given per-problem success probabilities, k samples each. */
function rows(bench: string, probs: number[], k: number, r: () => number, checkpoint: string): ResultRow[] {
  return probs.flatMap((p, i) =>
    Array.from({ length: k }, (_, s) => ({
      benchmark: bench, problem_id: `p${i}`, sample_idx: s, correct: r() < p, response_tokens: 100 + Math.floor(r() * 50),
      finish_reason: "stop", checkpoint,
    })),
  );
}

// Seeds hashed from (name, index), so the simulated datasets are independent streams.
function simulate(n: number, k: number, gap: number, seed: number | string) {
  const r = rng(unitSeed(0, "sim", seed));
  const pa = Array.from({ length: n }, () => 0.2 + 0.5 * r());
  return { a: rows("sim", pa, k, r, "A"), b: rows("sim", pa.map((p) => p + gap), k, r, "B") };
}

describe("sign-flip test", () => {
  it("is exact for few problems: five equal gains give p = 2/32", () => {
    expect(signFlipTest([0.5, 0.5, 0.5, 0.5, 0.5]).p).toBeCloseTo(2 / 32, 12);
    expect(signFlipTest([0, 0, 0]).p).toBe(1);
    expect(signFlipTest([0.25, -0.25]).p).toBe(1);
  });
  it("sampled patterns match the exact binomial p-value when many problems differ", () => {
    // 26 gains and 14 losses of equal size: |sum| >= observed iff the number of + signs X ~ Bin(40, 1/2)
    // is >= 26 or <= 14.
    const diffs = Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? -0.25 : 0.25));
    let tail = 0;
    for (let x = 0; x <= 40; x++) if (x >= 26 || x <= 14) tail += binom(40, x) / 2 ** 40;
    expect(Math.abs(signFlipTest(diffs, 1, 20_000).p - tail)).toBeLessThan(0.01);
  });
});

describe("compareResults", () => {
  it("finds a real gap: p < 0.05 and the CI excludes 0", () => {
    const { a, b } = simulate(30, 8, 0.3, 7);
    const c = compareResults(a, b).benchmarks[0]!;
    expect(c.diff).toBeGreaterThan(0.15);
    expect(c.p_value).toBeLessThan(0.05);
    expect(c.ci_low).toBeGreaterThan(0);
    expect(c.improved).toBeGreaterThan(c.worsened);
    expect(c.b_mean - c.a_mean).toBeCloseTo(c.diff, 12);
  });
  it("gives diff 0, a CI centred on 0 and p = 1 for identical inputs", () => {
    const { a } = simulate(30, 4, 0, 3);
    const c = compareResults(a, a.map((r) => ({ ...r, checkpoint: "B" }))).benchmarks[0]!;
    expect([c.diff, c.ci_low, c.ci_high, c.p_value]).toEqual([0, 0, 0, 1]);
    expect(c.gained).toEqual([]);
    expect(c.power.note).toMatch(/no problem's accuracy differs/);
  });
  it("covers a known true difference at about the nominal 95% (400 simulated datasets)", () => {
    let covered = 0;
    for (let s = 0; s < 400; s++) {
      const { a, b } = simulate(40, 4, 0.1, `coverage-${s}`);
      const c = compareResults(a, b, { reps: 1000, testReps: 200 }).benchmarks[0]!;
      if (c.ci_low <= 0.1 && 0.1 <= c.ci_high) covered++;
    }
    expect(covered / 400).toBeGreaterThanOrEqual(0.9);
    expect(covered / 400).toBeLessThanOrEqual(0.99);
  });
  it("p-values of null datasets are roughly uniform (400 datasets)", () => {
    const ps: number[] = [];
    for (let s = 0; s < 400; s++) {
      const { a, b } = simulate(30, 4, 0, `null-${s}`);
      ps.push(compareResults(a, b, { reps: 10, testReps: 1000 }).benchmarks[0]!.p_value);
    }
    const below = (x: number) => ps.filter((p) => p < x).length / ps.length;
    expect(below(0.05)).toBeGreaterThan(0.015);
    expect(below(0.05)).toBeLessThan(0.085);
    expect(below(0.5)).toBeGreaterThan(0.4);
    expect(below(0.5)).toBeLessThan(0.6);
  });
  it("refuses problems on one side only, naming them; --allow-unpaired restricts to the shared ones", () => {
    const { a, b } = simulate(5, 2, 0, 9);
    const short = b.filter((r) => r.problem_id !== "p3");
    expect(() => compareResults(a, short)).toThrow(/only in A: p3.*--allow-unpaired/);
    const c = compareResults(a, short, { allowUnpaired: true }).benchmarks[0]!;
    expect(c.problems).toBe(4);
    expect(c.unpaired.only_a).toEqual(["p3"]);
  });
  it("refuses a sample that appears twice", () => {
    const { a, b } = simulate(3, 2, 0, 9);
    expect(() => compareResults([...a, a[0]!], b)).toThrow(/sample 0 of problem 'p0' \(sim\) appears twice/);
  });
  it("lists problems that flipped and summarises lengths", () => {
    const mk = (id: string, correct: boolean[], ck: string, tokens: number): ResultRow[] =>
      correct.map((c, s) => ({ benchmark: "t", problem_id: id, sample_idx: s, correct: c, response_tokens: tokens, finish_reason: s === 0 ? "length" : "stop", checkpoint: ck }));
    const a = [...mk("x", [false, false], "A", 10), ...mk("y", [true, false], "A", 10), ...mk("z", [true, true], "A", 10)];
    const b = [...mk("x", [true, false], "B", 30), ...mk("y", [false, false], "B", 30), ...mk("z", [true, true], "B", 30)];
    const c = compareResults(a, b).benchmarks[0]!;
    expect(c.gained).toEqual(["x"]);
    expect(c.lost).toEqual(["y"]);
    expect([c.length.a.mean, c.length.b.mean, c.length.a.truncated]).toEqual([10, 30, 0.5]);
  });
});

function binom(n: number, k: number): number {
  let r = 1;
  for (let i = 0; i < k; i++) r = (r * (n - i)) / (i + 1);
  return r;
}
