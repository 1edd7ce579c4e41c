// Graders by the name the config uses (grader.math). New graders register here.
import { createMathGrader } from "./math/index.js";
import type { MathGrader } from "./types.js";

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
