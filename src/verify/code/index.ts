// The code grader: sandboxed stdin/stdout judging of untrusted Python programs (see docs/CODE_SANDBOX.md).
export { createCodeGrader, checkTests, type CodeGraderHandle } from "./grader.js";
export { gradeCodeFile, gradeRow, summaryLine, type GradeFileOptions, type GradeFileSummary } from "./grade-file.js";
export { registerGradeCode } from "./cli.js";
export { extractCode } from "./extract.js";
export { compareOutputs, parseDecimal, decimalEquals, pyStrip, pySplit, strippedLines, type CompareResult } from "./compare.js";
export {
  resolveOptions,
  DEFAULT_LIMITS,
  DEFAULT_COMPARE,
  type CodeGraderOptions,
  type CompareOptions,
  type FloatCompare,
  type SandboxLimits,
} from "./options.js";
