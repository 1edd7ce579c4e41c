import { afterAll, describe, expect, it } from "vitest";
import { createMathGrader, majorityVote } from "../src/verify/math/index.js";

const grader = createMathGrader({ poolSize: 1 });
afterAll(() => grader.close());

describe("majority vote over answers", () => {
  it("clusters equivalent answers and reports the majority, its share and the cluster sizes", async () => {
    const r = await majorityVote(["\\frac{1}{2}", "0.5", "1/2", "3", "\\dfrac12", "3.0", null, "7"], grader);
    expect(r.answer).toBe("\\frac{1}{2}");
    expect(r.share).toBe(4 / 8);
    expect(r.clusters).toEqual([
      { answer: "\\frac{1}{2}", count: 4, members: [0, 1, 2, 4] },
      { answer: "3", count: 2, members: [3, 5] },
      { answer: "7", count: 1, members: [7] },
    ]);
  });

  it("uses the symbolic path for clustering when needed, and handles ties and empty input", async () => {
    const r = await majorityVote(["\\sec^2 x", "\\tan^2 x + 1", "x", "y", "y"], grader);
    expect(r.clusters.map((c) => c.count)).toEqual([2, 2, 1]);
    expect(r.answer).toBe("\\sec^2 x"); // ties go to the earliest cluster
    expect(await majorityVote([], grader)).toEqual({ answer: null, share: 0, clusters: [] });
    expect(await majorityVote(["", "  "], grader)).toEqual({ answer: null, share: 0, clusters: [] });
  });

  it("keeps answers whose units conflict apart, though their numbers normalize alike", async () => {
    const r = await majorityVote(["5\\text{ cm}", "5\\text{ m}", "5 meters", "\\varnothing", "\\text{no solution}"], grader);
    expect(r.clusters.map((c) => c.members)).toEqual([[1, 2], [3, 4], [0]]);
  });

  it("works without a grader (starts and closes its own)", async () => {
    const r = await majorityVote(["70", "070", "71"]);
    expect(r).toMatchObject({ answer: "70", share: 2 / 3 });
  });
});
