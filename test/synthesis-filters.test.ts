// PromptCoT 2.0's problem filters (src/synthesis/filters.ts): each rule with its reason, the counts over a
// mixed set, and the benchmark match reusing dedup's decontamination index.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { answerFilter, bareAnswer, filterProblem, filterProblems, illPosedFilter, proofFilter } from "../src/synthesis/filters.js";
import { loadBenchmarks } from "../src/synthesis/dedup/index.js";

const FIX = join(dirname(fileURLToPath(import.meta.url)), "fixtures", "dedup");
const SUFFIX = "\nPlease reason step by step, and put your final answer within \\boxed{}.";

describe("problem filters", () => {
  it("drops proof problems and keeps computations that merely mention proofs' words", () => {
    expect(proofFilter("Prove that there are infinitely many primes.")).toEqual({ keep: false, reason: "proof", detail: "Prove" });
    expect(proofFilter("Let $n > 1$. Show that $n^3 - n$ is divisible by 6.")).toMatchObject({ keep: false, reason: "proof" });
    expect(proofFilter("Demonstrate that the sequence converges, then find its limit.")).toMatchObject({ reason: "proof" });
    expect(proofFilter("Find the smallest proven bound $k$ such that $k^2 > 50$.")).toEqual({ keep: true });
    expect(proofFilter("How many improvements are shown in the table?")).toEqual({ keep: true });
  });

  it("drops PromptCoT's ill-posed prompts whose conditions were never written", () => {
    expect(illPosedFilter(`Let $f$ be a function with the following properties:${SUFFIX}`)).toMatchObject({ keep: false, reason: "ill_posed" });
    expect(illPosedFilter(`Consider the set of integers satisfying the following conditions:\n${SUFFIX.trim()}`)).toMatchObject({ reason: "ill_posed" });
    expect(illPosedFilter("A polynomial has the following properties:\nFind its degree.")).toMatchObject({ reason: "ill_posed" });
    expect(illPosedFilter("A function satisfies the following conditions: f(1) = 2 and f(x+1) = 2f(x). Find f(5).")).toEqual({ keep: true });
  });

  it("drops missing, no-solution and trivial 0/1 answers, matching words rather than substrings", () => {
    expect(answerFilter(undefined)).toEqual({ keep: false, reason: "missing_answer" });
    expect(answerFilter("  $ $ ")).toEqual({ keep: false, reason: "missing_answer" });
    for (const a of ["No solution", "none", "\\text{DNE}", "does not exist", "$\\infty$", "infinitely many", "\\emptyset"]) {
      expect(answerFilter(a), a).toMatchObject({ keep: false, reason: "no_solution" });
    }
    for (const a of ["0", "1", "$1$", "\\boxed{0}", "1.0"]) expect(answerFilter(a), a).toMatchObject({ keep: false, reason: "trivial_answer" });
    for (const a of ["10", "\\frac{1}{2}", "\\text{north}", "\\sin x", "\\binom{n}{2}", "-1", "0.5", "(0, 1)"]) expect(answerFilter(a), a).toEqual({ keep: true });
    expect(bareAnswer(" $\\boxed{\\text{7}}$. ")).toBe("7");
  });

  it("counts drops by reason over a mixed set, answer filters only when answers are checked, first reason wins", async () => {
    const benchmarks = await loadBenchmarks([join(FIX, "benchmarks-chat.jsonl"), join(FIX, "benchmarks-plain.jsonl")]);
    const problems = [
      { prompt: `How many positive divisors does 360 have?${SUFFIX}`, answer: "24" },
      { prompt: "Prove that $\\sqrt 2$ is irrational.", answer: "1" },
      { prompt: `Find all integers n with the following properties:${SUFFIX}`, answer: "3" },
      { prompt: "Solve $x^2 + 1 = 0$ over the reals.", answer: "No real solution" },
      { prompt: "What is $\\cos 0$?", answer: "1" },
      { prompt: "What is the largest prime below 30?", answer: null },
      { prompt: "Tom has three times as many marbles as Jerry. After Tom gives Jerry 12 marbles, they have an equal number of marbles. How many did Tom start with?", answer: "36" },
      { prompt: "Find the least common multiple of 12 and 18.", answer: "36" },
    ];
    const withAnswers = filterProblems(problems, { checkAnswers: true, benchmarks });
    expect(withAnswers.dropped).toEqual({ proof: 1, ill_posed: 1, missing_answer: 1, no_solution: 1, trivial_answer: 1, benchmark_match: 1 });
    expect(withAnswers.kept.map((p) => p.answer)).toEqual(["24", "36"]);
    const noAnswers = filterProblems(problems, { benchmarks });
    expect(noAnswers.dropped).toEqual({ proof: 1, ill_posed: 1, missing_answer: 0, no_solution: 0, trivial_answer: 0, benchmark_match: 1 });
    expect(noAnswers.kept).toHaveLength(5);
    const hit = filterProblem(problems[6]!, { benchmarks });
    expect(hit).toMatchObject({ keep: false, reason: "benchmark_match" });
    expect(hit.keep ? "" : hit.detail).toMatch(/benchmarks-chat\.jsonl:2 \(id 1\): "tom has three times as many marbles/);
  });
});
