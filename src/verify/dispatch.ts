// Grading by problem kind (DESIGN: "a problem says what it is; the run holds a grader for each"): a math
// problem goes to the math checker with its answer, a code problem to the sandbox with its tests. Both
// land on one verdict scale, so pairs, pass rates, GRPO rewards and eval read a code sample as they read
// a math one; the sandbox's own verdict (which test failed, stderr) is kept beside it for the journal.
import { problemKind, type Problem } from "../data/problems.js";
import type { CodeGrader, CodeVerdict, CodeVerdictKind, GradeContext, MathGrader, MathVerdict, MathVerdictKind } from "./types.js";

export interface ProblemVerdict extends MathVerdict {
  /** Code problems only: the sandbox verdict (AC, WA, TLE, MLE, RE, OLE, no_code, error), failed test, stderr tail. */
  code?: CodeVerdict;
}

export interface Graders {
  grader: MathGrader;
  /** Present when the run has code problems (src/cli/run.ts creates it). */
  codeGrader?: CodeGrader;
}

/**
 * AC is correct; what the program did wrong (WA, TLE, MLE, RE, OLE) is incorrect; no code block is no
 * answer; `error` (the sandbox could not judge) is a grader failure, set aside like a math timeout.
 */
export function codeToVerdict(v: CodeVerdictKind): MathVerdictKind {
  if (v === "AC") return "correct";
  if (v === "no_code") return "no_answer";
  if (v === "error") return "error";
  return "incorrect";
}

export async function gradeProblem(g: Graders, problem: Problem, completion: string, context: GradeContext): Promise<ProblemVerdict> {
  if (problemKind(problem) === "math") return g.grader.grade(completion, problem.answer, context);
  if (!g.codeGrader) throw new Error(`problem ${problem.id} is a code problem but the run has no code grader`);
  const code = await g.codeGrader.grade({ completion }, problem.tests ?? [], context);
  return { verdict: codeToVerdict(code.verdict), extracted: null, ...(code.reason ? { reason: code.reason } : {}), code };
}
