// The verdict of one test from the runner's raw report and the expected output (which never left the
// controller). Order matters: limits first (a killed program's partial output means nothing), then
// crashes, then the comparison. Everything the runner reports is a hint from inside the sandbox, so no
// report can turn into AC except stdout that really matches.
import type { CodeVerdictKind } from "../types.js";
import { compareOutputs } from "./compare.js";
import type { CompareOptions } from "./options.js";
import type { RunResult } from "./protocol.js";

export interface TestJudgement {
  verdict: CodeVerdictKind;
  reason?: string;
}

const SIGKILL = 9;
const SIGXCPU = 24;
const MEMORY_HINTS = /MemoryError|Cannot allocate memory|std::bad_alloc|out of memory/;

export function judgeRun(r: RunResult, expected: string, compare: CompareOptions, oomKilled = false): TestJudgement {
  const stderr = r.stderrTail.toString("utf8");
  if (r.timedOut) return { verdict: "TLE", reason: `killed after ${Math.round(r.wallMs)} ms` };
  if (r.signal === SIGXCPU) return { verdict: "TLE", reason: "CPU time limit" };
  if (r.outputLimit) return { verdict: "OLE", reason: `${r.outputLimit} over its limit` };
  if (r.signal === SIGKILL && oomKilled) return { verdict: "MLE", reason: "sandbox memory limit (cgroup)" };
  if (r.memoryError || (r.exitCode !== 0 && MEMORY_HINTS.test(stderr))) return { verdict: "MLE", reason: "memory limit" };
  if (r.signal !== 0) return { verdict: "RE", reason: `killed by signal ${r.signal}` };
  if (r.exitCode !== 0) return { verdict: "RE", reason: `exit status ${r.exitCode}` };
  const cmp = compareOutputs(r.stdout.toString("utf8"), expected, compare);
  return cmp.ok ? { verdict: "AC" } : { verdict: "WA", reason: cmp.reason };
}
