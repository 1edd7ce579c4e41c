// Graders by the name the config uses (grader.math). New graders register here.
import { createMathGrader } from "./math/index.js";
import { createCodeGrader } from "./code/grader.js";
import type { CodeGrader, MathGrader } from "./types.js";

export interface GraderOptions {
  timeoutMs: number;
}

const MATH_GRADERS: Record<string, (o: GraderOptions) => Promise<MathGrader>> = {
  // The full checker: fast path in-process, symbolic path in killable Python processes.
  full: async (o) => createMathGrader({ timeoutMs: o.timeoutMs }),
};

export function mathGraderNames(): string[] {
  return Object.keys(MATH_GRADERS);
}

export async function createMathGraderByName(name: string, opts: GraderOptions): Promise<MathGrader> {
  const make = MATH_GRADERS[name];
  if (!make) throw new Error(`unknown math grader '${name}' (known: ${mathGraderNames().join(", ")})`);
  return make(opts);
}

export interface CodeGraderConfig {
  concurrency: number;
  time_limit_ms: number;
  memory_mb: number;
}

/** The sandbox grader of a run with code problems (grader.code); concurrency 0 = the machine's cores. */
export function createRunCodeGrader(c: CodeGraderConfig): CodeGrader {
  return createCodeGrader({
    ...(c.concurrency > 0 ? { concurrency: c.concurrency } : {}),
    limits: { timeLimitMs: c.time_limit_ms, memoryMb: c.memory_mb },
  });
}
