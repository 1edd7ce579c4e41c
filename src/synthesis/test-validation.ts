// Synthesized tests checked before use (PromptCoT 2.0 never checks expected outputs): a test is kept only
// when the teacher's solutions that pass the OTHER (still standing) tests produce its expected output in the sandbox. A
// solution that passes the rest is evidence about what the problem means; if such solutions print
// something else for this input, the expected output is the likelier mistake. Every program runs in the
// code grader's sandbox, one test per grade call, so the verdict matrix says which solution passed what.
import type { CodeGrader, CodeTest, CodeVerdictKind } from "../verify/types.js";

export type DropReason = "disagreement" | "no_passing_solution" | "sandbox_error";

export interface DroppedTest {
  test: CodeTest;
  reason: DropReason;
  /** e.g. "1 of 3 solutions that pass the other tests print the expected output". */
  detail: string;
}

export interface ValidationResult {
  kept: CodeTest[];
  dropped: DroppedTest[];
  /** verdicts[s][t]: solution s on test t alone. */
  verdicts: CodeVerdictKind[][];
}

export interface ValidationOptions {
  /** Share of the supporting solutions that must print the expected output (default 1: all of them). */
  minAgreement?: number;
}

/** Runs every solution on every test, one test per sandbox grade call, at most `concurrency` at once. */
export async function verdictMatrix(grader: CodeGrader, solutions: readonly string[], tests: readonly CodeTest[], concurrency = 2): Promise<CodeVerdictKind[][]> {
  const m: CodeVerdictKind[][] = solutions.map(() => []);
  const jobs = solutions.flatMap((_, s) => tests.map((_t, t) => [s, t] as const));
  let next = 0;
  const lane = async () => {
    for (let j = next++; j < jobs.length; j = next++) {
      const [s, t] = jobs[j]!;
      m[s]![t] = (await grader.grade({ code: solutions[s]! }, [tests[t]!])).verdict;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, lane));
  return m;
}

type Status = { kind: "keep" } | { kind: DropReason; detail: string; share: number };

/** What the solutions passing every other live test say about test i. */
function judge(i: number, live: readonly number[], verdicts: readonly CodeVerdictKind[][], need: number): Status {
  const others = live.filter((j) => j !== i);
  const supporters = verdicts.filter((row) => others.every((j) => row[j] === "AC"));
  if (supporters.some((row) => row[i] === "error")) return { kind: "sandbox_error", detail: "the sandbox could not run a supporting solution on it", share: 0 };
  if (supporters.length === 0) {
    // a solution that could not be judged on some test says nothing either way
    const blocked = verdicts.some((row) => live.some((j) => row[j] === "error"));
    const detail = `none of ${verdicts.length} solutions passes the other ${others.length} tests`;
    return { kind: blocked ? "sandbox_error" : "no_passing_solution", detail, share: 0 };
  }
  const agree = supporters.filter((row) => row[i] === "AC").length;
  const share = agree / supporters.length;
  if (share >= need) return { kind: "keep" };
  return { kind: "disagreement", detail: `${agree} of ${supporters.length} solutions that pass the other tests print the expected output`, share };
}

/**
 * The keep/drop decision for each test from a verdict matrix (pure). One wrong test would fail every
 * solution on the others' "pass the other tests", so disagreeing tests are removed one at a time, the least
 * agreed first, and the rest are judged again against the tests still standing.
 */
export function decideTests(tests: readonly CodeTest[], verdicts: readonly CodeVerdictKind[][], o: ValidationOptions = {}): Omit<ValidationResult, "verdicts"> {
  const need = o.minAgreement ?? 1;
  let live = tests.map((_, i) => i);
  const drops = new Map<number, DroppedTest>();
  for (;;) {
    const worst = live
      .map((i) => ({ i, s: judge(i, live, verdicts, need) }))
      .filter((x) => x.s.kind === "disagreement")
      .sort((a, b) => (a.s as { share: number }).share - (b.s as { share: number }).share || a.i - b.i)[0];
    if (!worst) break;
    const s = worst.s as Exclude<Status, { kind: "keep" }>;
    drops.set(worst.i, { test: tests[worst.i]!, reason: "disagreement", detail: s.detail });
    live = live.filter((i) => i !== worst.i);
  }
  const kept: CodeTest[] = [];
  for (const i of live) {
    const s = judge(i, live, verdicts, need);
    if (s.kind === "keep") kept.push(tests[i]!);
    else drops.set(i, { test: tests[i]!, reason: s.kind, detail: s.detail });
  }
  return { kept, dropped: [...drops.entries()].sort((a, b) => a[0] - b[0]).map(([, d]) => d) };
}

/** Validates `tests` against teacher `solutions` (programs) in the sandbox. */
export async function validateTests(grader: CodeGrader, solutions: readonly string[], tests: readonly CodeTest[], o: ValidationOptions & { concurrency?: number } = {}): Promise<ValidationResult> {
  const verdicts = await verdictMatrix(grader, solutions, tests, o.concurrency);
  return { ...decideTests(tests, verdicts, o), verdicts };
}
