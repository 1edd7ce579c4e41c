// The synthesis report on a constructed set; every expected figure below is worked out by hand.
import { describe, expect, it } from "vitest";
import { conceptPoolFromSets } from "../src/synthesis/concepts.js";
import { gini, meanPairwiseDistance, normalizedEntropy, synthesisReport } from "../src/synthesis/report.js";

const vec = (...x: number[]) => Float32Array.from(x);
// Pool: a in 2 sets, b, c, d in 1 each (sum of frequencies 5).
const pool = conceptPoolFromSets([{ concepts: ["a", "b"] }, { concepts: ["a", "c"] }, { concepts: ["d"] }]);
const problems = [
  { id: "p1", concepts: ["a", "b"], pass_rate: 0.5, mean_response_tokens: 100 },
  { id: "p2", concepts: ["a", "c"], pass_rate: 0, mean_response_tokens: 300 },
  { id: "p3", concepts: ["a", "z", "a"] }, // z is outside the pool; a repeated counts once
];

describe("synthesisReport", () => {
  const { json, markdown } = synthesisReport({
    problems,
    pool,
    problemEmbeddings: [vec(1, 0), vec(0, 1), vec(2, 0)], // the third is not unit length: normalised first
    referenceEmbeddings: [vec(0, 1), vec(0, 3)],
  });

  it("difficulty: means over the problems that have the figure", () => {
    expect(json.difficulty.pass_rate).toEqual({ mean: 0.25, n: 2, never_solved: 1, always_solved: 0 });
    expect(json.difficulty.response_tokens).toEqual({ mean: 200, n: 2 });
  });

  it("diversity: pairwise cosines 0, 1, 0 give mean distance 2/3; centroid (2/3, 1/3) vs (0, 1) gives 1 - 1/sqrt(5)", () => {
    expect(json.diversity.n).toBe(3);
    expect(json.diversity.mean_pairwise_distance).toBeCloseTo(2 / 3, 6);
    expect(json.diversity.distance_to_reference).toBeCloseTo(1 - 1 / Math.sqrt(5), 6);
  });

  it("coverage: usage a=3, b=1, c=1, d=0 over 5 slots; expected by frequency a=2, so a is over-used 1.5x", () => {
    const c = json.coverage;
    expect(c).toMatchObject({ pool_concepts: 4, used: 3, never_used: 1, never_used_examples: ["d"], unknown_concepts: 1, expected_basis: "pool frequency" });
    expect(c.over_used).toEqual([{ concept: "a", count: 3, expected: 2, ratio: 1.5 }]);
    // sorted counts 0,1,1,3: sum of (2i - n - 1) x_i = -1 + 1 + 9 = 9, over n * total = 20.
    expect(c.gini).toBeCloseTo(0.45, 10);
    // shares 0.6, 0.2, 0.2: H = 0.6 ln(1/0.6) + 0.4 ln 5 = 0.950271, over ln 4 = 1.386294.
    expect(c.normalized_entropy).toBeCloseTo(0.950271 / 1.386294, 5);
  });

  it("markdown carries the figures and their sample counts", () => {
    expect(markdown).toContain("| policy pass rate (mean) | 0.250 | 2 problems |");
    expect(markdown).toContain("| mean pairwise distance within the set | 0.667 | 3 problems |");
    expect(markdown).toContain("3 of 4 pool concepts used; 1 never used; 1 concepts outside the pool");
    expect(markdown).toContain("| a | 3 | 2.00 | 1.50 |");
    expect(markdown).toContain("`d`");
  });

  it("uses the sampler's expected inclusion when given", () => {
    const r = synthesisReport({ problems, pool, expectedInclusion: [0.5, 0.25, 0.5, 0.25] });
    // expected counts over 3 problems: a 1.5, b 0.75, c 1.5, d 0.75 -> over-used: a (3 / 1.5), b (1 / 0.75).
    expect(r.json.coverage.expected_basis).toBe("sampler");
    expect(r.json.coverage.over_used.map((o) => [o.concept, o.count, o.expected])).toEqual([["a", 3, 1.5], ["b", 1, 0.75]]);
    expect(r.json.coverage.over_used[0]!.ratio).toBe(2);
  });

  it("says n/a where an input is missing, and rejects misaligned embeddings", () => {
    const r = synthesisReport({ problems: [{ id: "x", concepts: ["d"] }], pool });
    expect(r.json.difficulty.pass_rate.mean).toBeNull();
    expect(r.json.diversity).toEqual({ n: 0, mean_pairwise_distance: null, reference_n: 0, distance_to_reference: null });
    expect(r.markdown).toContain("| policy pass rate (mean) | n/a | 0 problems |");
    expect(() => synthesisReport({ problems, pool, problemEmbeddings: [vec(1, 0)] })).toThrow(/1 vectors for 3 problems/);
  });
});

describe("figures", () => {
  it("gini: 0 when even, (n-1)/n when one concept holds everything", () => {
    expect(gini([2, 2, 2, 2])).toBe(0);
    expect(gini([0, 0, 0, 5])).toBeCloseTo(0.75, 12);
    expect(gini([0, 0])).toBeNull();
  });

  it("normalized entropy: 1 when even, 0 when concentrated", () => {
    expect(normalizedEntropy([3, 3, 3])).toBeCloseTo(1, 12);
    expect(normalizedEntropy([0, 7, 0])).toBeCloseTo(0, 12);
  });

  it("mean pairwise distance: identical vectors 0, orthogonal 1, opposite 2", () => {
    expect(meanPairwiseDistance([vec(1, 0), vec(1, 0), vec(1, 0)])).toBeCloseTo(0, 6);
    expect(meanPairwiseDistance([vec(1, 0, 0), vec(0, 1, 0), vec(0, 0, 1)])).toBeCloseTo(1, 6);
    expect(meanPairwiseDistance([vec(1, 0), vec(-1, 0)])).toBeCloseTo(2, 6);
    expect(meanPairwiseDistance([vec(1, 0)])).toBeNull();
  });
});
