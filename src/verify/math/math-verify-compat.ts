// How math-verify's own test suite runs a case (the fields of shared/data/graders/math_verify_cases.jsonl),
// expressed as this grader's options: both sides are extracted like completions, the "latex"/"expr" match
// types become the last-LaTeX / last-number fallbacks, and precision/strict/set-relation flags carry over.
// math-verify does not split on </think> and reads a final "\boxed{" even when its brace never closes.
import type { CompareOptions } from "./compare.js";
import type { ExtractOptions } from "./extract.js";

export interface MathVerifyCase {
  gold: string;
  pred: string;
  expected: boolean;
  match_types: string[];
  precision: number;
  strict: boolean;
  allow_set_relation_comp: boolean;
}

export function mathVerifyCaseOptions(c: MathVerifyCase): {
  extract: ExtractOptions;
  referenceAsCompletion: true;
  compare: CompareOptions;
} {
  return {
    extract: {
      afterThink: false,
      unclosedBox: true,
      lastLatex: c.match_types.some((m) => m.startsWith("latex")),
      lastNumber: c.match_types.includes("expr"),
    },
    referenceAsCompletion: true,
    compare: { precision: c.precision, strict: c.strict, allowSetRelation: c.allow_set_relation_comp },
  };
}
