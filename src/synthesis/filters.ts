// PromptCoT 2.0's problem filters from its self-play data preparation, as pure functions that say why.
// Each returns {keep, reason}; filterProblem applies them in PromptCoT's order and the first drop wins.
import type { BenchmarkIndex, Contamination } from "./dedup/decontaminate.js";
import { MinHasher, wordSetHashes } from "./dedup/minhash.js";
import { U32Vec } from "./dedup/table.js";
import { problemText } from "./dedup/text.js";

export type FilterReason = "proof" | "ill_posed" | "missing_answer" | "no_solution" | "trivial_answer" | "benchmark_match";

export type FilterResult = { keep: true; reason?: undefined } | { keep: false; reason: FilterReason; detail?: string };

const KEEP: FilterResult = { keep: true };

/**
 * Proof problems have no single checkable answer. PromptCoT drops "prove that"; the other phrasings
 * ask for the same thing.
 */
const PROOF = /\b(prove|proves|proving|disprove|show that|demonstrate that|establish that)\b/i;

/**
 * PromptCoT's "no solution" prompts: the generator stopped at a colon with the conditions never stated
 * ("… satisfying the following properties:" then the instruction suffix).
 */
const ILL_POSED = [
  /the following conditions:\s*(?:\n\s*)?(?:please reason step by step|$)/i,
  /the following properties:\s*(?:\n\s*)?(?:please reason step by step|find|$)/i,
  /solution to\s*(?:\n\s*)?(?:please reason step by step|$)/i,
];

export function proofFilter(problem: string): FilterResult {
  const m = PROOF.exec(problem);
  return m ? { keep: false, reason: "proof", detail: m[0] } : KEEP;
}

export function illPosedFilter(problem: string): FilterResult {
  const m = ILL_POSED.find((re) => re.test(problem));
  return m ? { keep: false, reason: "ill_posed", detail: m.source } : KEEP;
}

/** The answer with $…$, \(…\), \boxed{…}, \text{…} and surrounding space and final period removed. */
export function bareAnswer(answer: string): string {
  let a = answer.trim();
  for (let prev = ""; prev !== a; ) {
    prev = a;
    a = a.replace(/^\$+|\$+$/g, "").replace(/^\\\(|\\\)$/g, "").replace(/\.$/, "").trim();
    const boxed = /^\\(?:boxed|text|mathrm)\{([\s\S]*)\}$/.exec(a);
    if (boxed) a = boxed[1]!.trim();
  }
  return a;
}

/**
 * "No solution"-style answers. PromptCoT tests for the substrings "none", "no" and "inf", which also drops
 * answers such as "\text{north}" or "\sin x"; we match whole words instead (no, none, no solution, does not
 * exist, DNE, undefined, impossible) and infinity (∞, \infty, inf, infinite(ly many)).
 */
const NO_SOLUTION = /(^|[^a-z])(no|none|nothing|no solutions?|no such \w+|not exist|does not exist|doesn't exist|dne|undefined|impossible|empty set|\\emptyset|\\varnothing|∅|\\infty|∞|inf|infinity|infinite(ly many)?)($|[^a-z])/i;

export function answerFilter(answer: string | null | undefined): FilterResult {
  if (answer === null || answer === undefined || bareAnswer(answer) === "") return { keep: false, reason: "missing_answer" };
  const bare = bareAnswer(answer);
  const m = NO_SOLUTION.exec(bare);
  if (m) return { keep: false, reason: "no_solution", detail: m[2] };
  if (/^[01](?:\.0*)?$/.test(bare)) return { keep: false, reason: "trivial_answer", detail: bare };
  return KEEP;
}

/** Whether the problem overlaps a benchmark problem: the decontamination check of dedup, reused. */
export function benchmarkFilter(problem: string, benchmarks: BenchmarkIndex, hasher = new MinHasher()): FilterResult {
  const lower = problemText(problem).toLowerCase();
  const words = wordSetHashes(lower, new U32Vec(), benchmarks.rule);
  const hit: Contamination | null = benchmarks.check(lower, words, words.length > 0 ? hasher.signature(words) : null);
  if (!hit) return KEEP;
  const where = `${hit.item.file}:${hit.item.line}${hit.item.id !== undefined ? ` (id ${hit.item.id})` : ""}`;
  return { keep: false, reason: "benchmark_match", detail: hit.match === "ngram" ? `${where}: "${hit.ngram}"` : `${where}: Jaccard ${hit.jaccard.toFixed(3)}` };
}

export interface FilterOptions {
  /** Apply the answer filters (missing, no solution, trivial): only once answers exist. */
  checkAnswers?: boolean;
  benchmarks?: BenchmarkIndex;
}

export interface Problem {
  prompt: string;
  answer?: string | null;
}

/** All filters in PromptCoT's order: benchmark match, ill-posed, proof, then the answer filters. */
export function filterProblem(p: Problem, o: FilterOptions = {}, hasher?: MinHasher): FilterResult {
  const checks: (() => FilterResult)[] = [
    () => (o.benchmarks ? benchmarkFilter(p.prompt, o.benchmarks, hasher) : KEEP),
    () => illPosedFilter(p.prompt),
    () => proofFilter(p.prompt),
    () => (o.checkAnswers ? answerFilter(p.answer) : KEEP),
  ];
  for (const check of checks) {
    const r = check();
    if (!r.keep) return r;
  }
  return KEEP;
}

/** Applies filterProblem to each problem; returns the kept ones and the drop counts by reason. */
export function filterProblems<P extends Problem>(problems: Iterable<P>, o: FilterOptions = {}): { kept: P[]; dropped: Record<FilterReason, number> } {
  const dropped: Record<FilterReason, number> = { proof: 0, ill_posed: 0, missing_answer: 0, no_solution: 0, trivial_answer: 0, benchmark_match: 0 };
  const kept: P[] = [];
  const hasher = new MinHasher();
  for (const p of problems) {
    const r = filterProblem(p, o, hasher);
    if (r.keep) kept.push(p);
    else dropped[r.reason]++;
  }
  return { kept, dropped };
}
