// Public surface of the math grader. See docs/MATH_GRADER.md.
export { createMathGrader } from "./grader.js";
export type { EquivalenceResult, FullMathGrader, MathGraderOptions } from "./grader.js";
export { extractAnswer, extractReference, findAnswer, findReference } from "./extract.js";
export type { ExtractOptions, Extracted } from "./extract.js";
export { majorityVote } from "./vote.js";
export type { VoteCluster, VoteResult } from "./vote.js";
export { gradeMathFile, registerGradeMath } from "./grade-file.js";
export type { GradeFileOptions, GradeFileSummary } from "./grade-file.js";
export { mathVerifyCaseOptions } from "./math-verify-compat.js";
export type { MathVerifyCase } from "./math-verify-compat.js";
export { DEFAULT_COMPARE } from "./compare.js";
export type { CompareOptions } from "./compare.js";
export { pythonPath } from "../../cluster/python-env.js";
