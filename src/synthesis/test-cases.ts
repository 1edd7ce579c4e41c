// Test cases for synthesized code problems, PromptCoT 2.0's way: a model writes ONE stdin/stdout test
// case per round as a fenced JSON object {"input": "...", "output": "..."}; several rounds with
// different seeds give several tests. Replies are parsed strictly (an object with exactly two string
// fields, nothing else), malformed ones are dropped, duplicates merged, and an input that received
// two different outputs is dropped altogether (at most one of them can be right). Problems left with
// no test are dropped. The model call is a callback, so this module stays pure and testable.
import { unitSeed } from "../experiment/ids.js";
import type { CodeTest } from "../verify/types.js";
import { strippedLines } from "../verify/code/compare.js";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface TestCasePrompt {
  /** `<problem id>#tc<round>`: echoed back by the generator. */
  id: string;
  messages: ChatMessage[];
  seed: number;
}

export interface GeneratedText {
  id: string;
  text: string;
}

export type GenerateFn = (prompts: TestCasePrompt[]) => Promise<GeneratedText[]>;

export interface CodeProblem {
  id: string;
  /** The problem statement. */
  prompt: string;
  [field: string]: unknown;
}

export type ProblemWithTests<P extends CodeProblem = CodeProblem> = P & { test_cases: CodeTest[] };

export interface SynthesisStats {
  prompts: number;
  /** Replies that parsed into a test case. */
  parsed: number;
  /** Replies that did not (no block, bad JSON, extra or non-string fields, too long). */
  malformed: number;
  /** Replies missing from the generator's answer. */
  missing: number;
  duplicates: number;
  /** Inputs dropped because rounds disagreed about their output. */
  conflicts: number;
  keptProblems: number;
  droppedProblems: number;
}

export interface SynthesisResult<P extends CodeProblem> {
  problems: ProblemWithTests<P>[];
  /** Ids of problems that ended with no usable test. */
  dropped: string[];
  stats: SynthesisStats;
}

export interface SynthesisOptions {
  /** Run seed from which each round's seed is derived (default 0). */
  seed?: number;
  /** Longest accepted input or output, in characters (default 1 MiB). */
  maxFieldChars?: number;
}

const SYSTEM = [
  "You write test cases for competitive programming problems.",
  "A test case is the exact text given to the program on standard input and the exact text the correct",
  "program prints on standard output. Work the answer out carefully: a wrong expected output is worse than none.",
].join(" ");

// Rotating emphasis so rounds cover different ground even at similar seeds.
const FOCUS = [
  "a small, typical case",
  "an edge case at the smallest allowed sizes or values",
  "a case near the largest allowed values that is still small enough to write out in full",
  "a tricky case that a plausible but wrong solution would fail",
  "a case with repeated or equal values",
  "a case with an unusual but valid structure",
];

/** The id a round's prompt carries for a problem. */
export function testCasePromptId(problemId: string, round: number): string {
  return `${problemId}#tc${round}`;
}

/** The chat messages asking for one test case of `problem` in round `round` (0-based). */
export function buildTestCasePrompt(problem: Pick<CodeProblem, "prompt">, round: number): ChatMessage[] {
  const focus = FOCUS[round % FOCUS.length]!;
  const user = [
    "Problem:",
    problem.prompt.trim(),
    "",
    `Write ONE test case for this problem: ${focus}.`,
    "Reply with exactly one fenced JSON block and nothing after it, in this form:",
    "```json",
    '{"input": "<exact standard input>", "output": "<exact expected standard output>"}',
    "```",
    'Both values are JSON strings (use \\n for line breaks). No other keys.',
  ].join("\n");
  return [
    { role: "system", content: SYSTEM },
    { role: "user", content: user },
  ];
}

/** The prompts of one round, one per problem, each with its own deterministic seed. */
export function buildRoundPrompts(problems: readonly Pick<CodeProblem, "id" | "prompt">[], round: number, seed = 0): TestCasePrompt[] {
  return problems.map((p) => ({
    id: testCasePromptId(p.id, round),
    messages: buildTestCasePrompt(p, round),
    seed: unitSeed(seed, "test-cases", p.id, round),
  }));
}

const FENCE = /```([^\n`]*)\n([\s\S]*?)```/g;

/**
 * The test case in a model reply, or null. Strict: the last fenced block after any </think> (info
 * string empty or "json") must be a JSON object with exactly the string fields `input` and `output`.
 */
export function parseTestCase(reply: string, maxFieldChars = 1 << 20): CodeTest | null {
  if (reply.length > 4 * maxFieldChars + 65536) return null; // no reply that long holds one valid case
  const end = reply.lastIndexOf("</think>");
  if (end < 0 && reply.includes("<think>")) return null; // cut off while thinking
  const answer = end >= 0 ? reply.slice(end + "</think>".length) : reply;
  let last: string | null = null;
  for (const m of answer.matchAll(FENCE)) {
    const info = m[1]!.trim().toLowerCase();
    if (info === "" || info === "json") last = m[2]!;
  }
  if (last === null) return null;
  let value: unknown;
  try {
    value = JSON.parse(last);
  } catch {
    return null;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return null;
  const keys = Object.keys(value);
  if (keys.length !== 2 || !keys.includes("input") || !keys.includes("output")) return null;
  const { input, output } = value as Record<string, unknown>;
  if (typeof input !== "string" || typeof output !== "string") return null;
  if (input.length > maxFieldChars || output.length > maxFieldChars) return null;
  if (output.trim() === "") return null; // every stdin/stdout problem prints something
  return { input: input.endsWith("\n") || input === "" ? input : `${input}\n`, output };
}

/** The key two tests share when they are the same test: inputs equal up to trailing whitespace per line. */
export function testKey(t: CodeTest): string {
  return strippedLines(t.input).join("\n");
}

function sameOutput(a: string, b: string): boolean {
  const x = strippedLines(a);
  const y = strippedLines(b);
  return x.length === y.length && x.every((l, i) => l === y[i]);
}

export interface MergeOutcome {
  tests: CodeTest[];
  duplicates: number;
  conflicts: number;
}

/**
 * Merge test lists in order, first occurrence kept. Same input + same output (up to whitespace) is a
 * duplicate; same input + different output is a conflict and removes that input entirely.
 */
export function mergeTestCases(...lists: readonly CodeTest[][]): MergeOutcome {
  const byKey = new Map<string, CodeTest>();
  const conflicted = new Set<string>();
  let duplicates = 0;
  for (const list of lists) {
    for (const t of list) {
      const k = testKey(t);
      if (conflicted.has(k)) continue;
      const seen = byKey.get(k);
      if (!seen) byKey.set(k, t);
      else if (sameOutput(seen.output, t.output)) duplicates++;
      else {
        byKey.delete(k);
        conflicted.add(k);
      }
    }
  }
  return { tests: [...byKey.values()], duplicates, conflicts: conflicted.size };
}

/** Deduplicate one list (see mergeTestCases). */
export function dedupTestCases(tests: readonly CodeTest[]): CodeTest[] {
  return mergeTestCases([...tests]).tests;
}

/**
 * Run `rounds` rounds of test-case generation over `problems` (one generate() call per round, one
 * prompt per problem), and return the problems that got at least one test, with `test_cases` set.
 */
export async function synthesizeTestCases<P extends CodeProblem>(
  problems: readonly P[],
  rounds: number,
  generate: GenerateFn,
  opts: SynthesisOptions = {},
): Promise<SynthesisResult<P>> {
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`rounds must be a positive integer (got ${rounds})`);
  const ids = new Set<string>();
  for (const p of problems) {
    if (ids.has(p.id)) throw new Error(`duplicate problem id '${p.id}'`);
    ids.add(p.id);
  }
  const collected = new Map<string, CodeTest[]>(problems.map((p) => [p.id, []]));
  const stats: SynthesisStats = {
    prompts: 0,
    parsed: 0,
    malformed: 0,
    missing: 0,
    duplicates: 0,
    conflicts: 0,
    keptProblems: 0,
    droppedProblems: 0,
  };
  for (let round = 0; round < rounds; round++) {
    const prompts = buildRoundPrompts(problems, round, opts.seed ?? 0);
    stats.prompts += prompts.length;
    const replies = new Map<string, string>();
    for (const r of await generate(prompts)) {
      if (r && typeof r.id === "string" && typeof r.text === "string" && !replies.has(r.id)) replies.set(r.id, r.text);
    }
    for (const p of problems) {
      const text = replies.get(testCasePromptId(p.id, round));
      if (text === undefined) {
        stats.missing++;
        continue;
      }
      const t = parseTestCase(text, opts.maxFieldChars);
      if (!t) {
        stats.malformed++;
        continue;
      }
      stats.parsed++;
      collected.get(p.id)!.push(t);
    }
  }
  const kept: ProblemWithTests<P>[] = [];
  const dropped: string[] = [];
  for (const p of problems) {
    const m = mergeTestCases(collected.get(p.id)!);
    stats.duplicates += m.duplicates;
    stats.conflicts += m.conflicts;
    if (m.tests.length === 0) dropped.push(p.id);
    else kept.push({ ...p, test_cases: m.tests });
  }
  stats.keptProblems = kept.length;
  stats.droppedProblems = dropped.length;
  return { problems: kept, dropped, stats };
}
