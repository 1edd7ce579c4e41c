// The grading interface the pipeline calls. Implementations live in verify/math and verify/code.
// Graders must never run untrusted code or unbounded math in the controller's process:
// anything that can hang or blow up goes to a killable child process with time and memory bounds.

export type MathVerdictKind = "correct" | "incorrect" | "no_answer" | "timeout" | "error";

export interface MathVerdict {
  verdict: MathVerdictKind;
  /** The answer extracted from the completion, or null when none was found. */
  extracted: string | null;
  /** Why, for error/timeout/no_answer verdicts. */
  reason?: string;
}

/** What a grader must know about how the completion was produced. */
export interface GradeContext {
  /**
   * The templated prompt ended inside an open <think> block: only text after the completion's "</think>"
   * is graded, and a completion that never closes the block has no answer (no_answer / no_code).
   */
  promptOpensThink?: boolean;
}

export interface MathGrader {
  /** Grade one completion against a reference answer (plain or LaTeX, or "#### 70" style). */
  grade(completion: string, reference: string, context?: GradeContext): Promise<MathVerdict>;
  /** Release child processes. Idempotent. */
  close(): Promise<void>;
}

export type CodeVerdictKind = "AC" | "WA" | "TLE" | "MLE" | "RE" | "OLE" | "no_code" | "error";

export interface CodeTest {
  input: string;
  output: string;
}

export interface CodeVerdict {
  verdict: CodeVerdictKind;
  /** Index of the first failing test, or null. */
  failed_test: number | null;
  /** Short tail of the program's stderr. */
  stderr: string;
  reason?: string;
}

export interface CodeGrader {
  /** Grade a model completion (fenced code block is extracted) or a bare program against stdin/stdout tests. */
  grade(program: { completion?: string; code?: string }, tests: CodeTest[], context?: GradeContext): Promise<CodeVerdict>;
  close(): Promise<void>;
}
