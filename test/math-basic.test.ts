import { describe, expect, it } from "vitest";
import { gradeBasic, lastBoxed } from "../src/verify/math-basic.js";

describe("skeleton math grader", () => {
  it("takes the last balanced \\boxed after </think>", () => {
    expect(lastBoxed("\\boxed{1} then \\boxed{\\frac{1}{2}}")).toBe("\\frac{1}{2}");
    expect(lastBoxed("\\boxed{unbalanced")).toBeNull();
    expect(gradeBasic("<think>\\boxed{3}</think> so \\boxed{4}", "4").verdict).toBe("correct");
    expect(gradeBasic("<think>\\boxed{4}</think> no box", "4").verdict).toBe("no_answer");
  });

  it("compares numbers exactly, never with a tolerance", () => {
    expect(gradeBasic("\\boxed{007}", "7").verdict).toBe("correct");
    expect(gradeBasic("\\boxed{1,000}", "#### 1000").verdict).toBe("correct");
    expect(gradeBasic("\\boxed{2.50}", "2.5").verdict).toBe("correct");
    expect(gradeBasic("\\boxed{10001}", "10000").verdict).toBe("incorrect");
    expect(gradeBasic("\\boxed{0.1234567}", "0.1234568").verdict).toBe("incorrect");
    expect(gradeBasic("\\boxed{}", "").verdict).toBe("no_answer");
    expect(gradeBasic("\\boxed{5}", "").verdict).toBe("error");
  });
});
