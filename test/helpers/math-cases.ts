// Runs math-verify-shaped cases through our grader the way math-verify runs its own (mathVerifyCaseOptions);
// used by this project's cases (test/) and math-verify's suite (test-shared/).
import { readFileSync } from "node:fs";
import { type MathVerifyCase, createMathGrader, mathVerifyCaseOptions } from "../../src/verify/math/index.js";

export const readCases = (path: string | URL): (MathVerifyCase & { comment?: string })[] =>
  readFileSync(path, "utf8").trim().split("\n").map((l) => JSON.parse(l));

/** Indices of the cases whose verdict differs from the label, and how many each path decided. */
export async function runCases(rows: MathVerifyCase[]): Promise<{ misses: number[]; paths: { fast: number; symbolic: number } }> {
  const grader = createMathGrader({ timeoutMs: 20_000, poolSize: 1 });
  try {
    const misses: number[] = [];
    const paths = { fast: 0, symbolic: 0 };
    for (const [i, c] of rows.entries()) {
      const v = await grader.gradeWith(c.pred, c.gold, mathVerifyCaseOptions(c));
      if (v.path) paths[v.path]++;
      if ((v.verdict === "correct") !== c.expected) misses.push(i);
    }
    return { misses, paths };
  } finally {
    await grader.close();
  }
}
