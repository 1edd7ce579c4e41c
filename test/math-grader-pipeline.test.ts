// What the self-play pipeline relies on from its grader (grader.math: full): the last balanced
// \boxed after </think>, and numbers compared exactly, never with a tolerance.
import { afterAll, describe, expect, it } from "vitest";
import { createMathGraderByName } from "../src/verify/registry.js";
import { extractAnswer } from "../src/verify/math/index.js";

const grader = await createMathGraderByName("full", { timeoutMs: 5000 });
afterAll(() => grader.close());
const verdict = async (completion: string, reference: string) => (await grader.grade(completion, reference)).verdict;

describe("the pipeline's math grader", () => {
  it("takes the last balanced \\boxed after </think>", async () => {
    expect(extractAnswer("\\boxed{1} then \\boxed{\\frac{1}{2}}")).toBe("\\frac{1}{2}");
    expect(await verdict("\\boxed{unbalanced", "4")).toBe("no_answer");
    expect(await verdict("<think>\\boxed{3}</think> so \\boxed{4}", "4")).toBe("correct");
    expect(await verdict("<think>\\boxed{4}</think> no box", "4")).toBe("no_answer");
  });

  it("compares numbers exactly, never with a tolerance", async () => {
    expect(await verdict("\\boxed{007}", "7")).toBe("correct");
    expect(await verdict("\\boxed{1,000}", "#### 1000")).toBe("correct");
    expect(await verdict("\\boxed{2.50}", "2.5")).toBe("correct");
    expect(await verdict("\\boxed{10001}", "10000")).toBe("incorrect");
    expect(await verdict("\\boxed{0.1234567}", "0.1234568")).toBe("incorrect");
    expect(await verdict("\\boxed{}", "")).toBe("error");
    expect(await verdict("\\boxed{5}", "")).toBe("error");
  });

  it("rejects an unknown grader name with the known ones", async () => {
    await expect(createMathGraderByName("nope", { timeoutMs: 1 })).rejects.toThrow(/unknown math grader 'nope' \(known: full\)/);
  });
});
