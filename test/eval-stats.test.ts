// Eval statistics: unbiased pass@k against exact combinatorics, its CI over problems, paired
// comparisons that refuse to pair a problem with a missing one, and eval summaries that refuse gaps.
import { describe, expect, it } from "vitest";
import { type EvalRecord, summarizeRecords } from "../src/eval/heldout.js";
import { pairedByProblem, passAtK, passAtKEstimate, reportedKs } from "../src/eval/stats.js";

function choose(n: number, k: number): bigint {
  if (k < 0 || k > n) return 0n;
  let r = 1n;
  for (let i = 0; i < k; i++) r = (r * BigInt(n - i)) / BigInt(i + 1);
  return r;
}

/** 1 - C(n-c,k)/C(n,k) with exact integers, to 15 significant digits. */
function exactPassAtK(n: number, c: number, k: number): number {
  const scale = 10n ** 15n;
  const none = (choose(n - c, k) * scale) / choose(n, k);
  return 1 - Number(none) / 1e15;
}

describe("unbiased pass@k", () => {
  it("equals 1 - C(n-c,k)/C(n,k) for every n <= 24, c, k", () => {
    for (let n = 1; n <= 24; n++) {
      for (let c = 0; c <= n; c++) {
        for (let k = 1; k <= n; k++) expect(passAtK(n, c, k), `n=${n} c=${c} k=${k}`).toBeCloseTo(exactPassAtK(n, c, k), 12);
      }
    }
  });
  it("has the known closed forms: pass@1 = c/n, pass@n = [c > 0]", () => {
    expect(passAtK(16, 5, 1)).toBeCloseTo(5 / 16, 14);
    expect(passAtK(16, 1, 16)).toBe(1);
    expect(passAtK(16, 0, 16)).toBe(0);
    expect(passAtK(4, 1, 2)).toBeCloseTo(0.5, 14); // 1 - C(3,2)/C(4,2) = 1 - 3/6
  });
  it("is stable where the binomials overflow a double", () => {
    // C(2000, 1000) ~ 1e600; pass@1000 with one correct sample of 2000 is exactly 1/2
    expect(passAtK(2000, 1, 1000)).toBeCloseTo(0.5, 12);
    expect(passAtK(2000, 3, 1000)).toBeCloseTo(exactPassAtK(2000, 3, 1000), 12);
    expect(Number.isFinite(passAtK(100_000, 50_000, 10))).toBe(true);
  });
  it("refuses impossible counts with the values in the message", () => {
    expect(() => passAtK(4, 5, 1)).toThrow(/n=4, c=5, k=1/);
    expect(() => passAtK(4, 1, 5)).toThrow(/1 <= k <= n/);
    expect(() => passAtK(4, 1, 0)).toThrow();
    expect(() => passAtK(4, 1.5, 1)).toThrow();
  });
  it("reports k = 1, powers of two below n, and n", () => {
    expect(reportedKs(1)).toEqual([1]);
    expect(reportedKs(4)).toEqual([1, 2, 4]);
    expect(reportedKs(10)).toEqual([1, 2, 4, 8, 10]);
  });
  it("comes with a bootstrap CI over problems that holds the estimate", () => {
    const counts = Array.from({ length: 30 }, (_, i) => ({ n: 8, c: i % 5 }));
    const e = passAtKEstimate(counts, 2, 1);
    expect(e.value).toBeCloseTo(counts.reduce((a, x) => a + passAtK(8, x.c, 2), 0) / 30, 12);
    expect(e.ci.lo).toBeLessThan(e.value);
    expect(e.ci.hi).toBeGreaterThan(e.value);
    expect(passAtKEstimate(counts.map((x) => ({ ...x, c: 8 })), 2).ci).toEqual({ lo: 1, hi: 1 });
  });
});

describe("paired comparison by problem", () => {
  const m = (entries: [string, number][]) => new Map(entries);
  it("pairs by id, not by position", () => {
    const c = pairedByProblem(m([["a", 0], ["b", 1]]), m([["b", 1], ["a", 0.5]]));
    expect(c).toMatchObject({ n: 2, delta: 0.25, improved: 1, worsened: 0 });
  });
  it("a problem missing on either side is an error naming it, never a 0", () => {
    expect(() => pairedByProblem(m([["a", 0.5], ["b", 1]]), m([["a", 0.5]]))).toThrow(/missing after: b/);
    expect(() => pairedByProblem(m([["a", 0.5]]), m([["a", 0.5], ["c", 0]]))).toThrow(/missing before: c/);
    expect(() => pairedByProblem(m([]), m([]))).toThrow(/zero problems/);
  });
});

describe("eval summaries", () => {
  const rec = (prompt_id: string, sample: number, correct: boolean, extra: Partial<EvalRecord> = {}): EvalRecord => ({
    verdict: correct ? "correct" : "incorrect",
    extracted: null,
    prompt_id,
    sample,
    seed: sample,
    text: "",
    finish_reason: "stop",
    prompt_opens_think: false,
    ...extra,
  });
  const full = [rec("a", 0, true), rec("a", 1, false), rec("a", 2, false), rec("a", 3, false), ...[0, 1, 2, 3].map((i) => rec("b", i, false))];

  it("reports avg@n and unbiased pass@k with CIs, and what the grader could not judge", () => {
    const withTimeout = full.map((r, i) => (i === 5 ? { ...r, verdict: "timeout" as const, finish_reason: "length" } : r));
    const s = summarizeRecords(withTimeout, ["a", "b"], 4, 1, 0);
    expect(s.score).toBeCloseTo(0.125, 12);
    expect(s.pass_at.map((p) => [p.k, p.value])).toEqual([[1, 0.125], [2, 0.25], [4, 0.5]]);
    expect(s).toMatchObject({ problems: 2, samples: 8, timeout: 1, error: 0, truncated: 1 });
  });
  it("a problem without samples is an error, not a 0", () => {
    expect(() => summarizeRecords(full.filter((r) => r.prompt_id !== "b"), ["a", "b"], 4, 2, 0)).toThrow(
      /eval after iteration 2: 1 of 2 problems do not have eval.samples_per_prompt=4 samples \(b: 0\)/,
    );
  });
  it("a problem with fewer samples than asked is an error", () => {
    expect(() => summarizeRecords(full.slice(1), ["a", "b"], 4, 0, 0)).toThrow(/eval before training: .*\(a: 3\)/);
  });
  it("samples of a problem outside the held-out set are an error", () => {
    expect(() => summarizeRecords([...full, rec("z", 0, true)], ["a", "b"], 4, 1, 0)).toThrow(/not in the held-out set \(z\)/);
  });
});
