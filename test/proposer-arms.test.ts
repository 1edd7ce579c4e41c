// The three-arm comparison of the self-play-on-synthesized-problems report: paired differences over the same
// held-out problems with a bootstrap CI, a sign-flip p-value and the difference detectable at 80% power.
import { describe, expect, it } from "vitest";
import { compareArms, POWER_TARGET_POINTS } from "../src/synthesis/proposer-report.js";

const scores = (xs: number[]) => new Map(xs.map((x, i) => [`p${i}`, x]));

describe("three-arm comparison", () => {
  it("reports the paired difference, its CI, p and the 80%-power detectable difference", () => {
    // 64 problems: arm a beats b by 0.25 on half of them, ties on the rest
    const b = scores(Array.from({ length: 64 }, (_, i) => (i % 4) / 4));
    const a = scores(Array.from({ length: 64 }, (_, i) => (i % 4) / 4 + (i % 2 === 0 ? 0.25 : 0)));
    const c = compareArms("a − b", a, b, 7);
    expect(c.n).toBe(64);
    expect(c.delta).toBeCloseTo(0.125, 10);
    expect(c.ci.lo).toBeGreaterThan(0);
    expect(c.ci.hi).toBeLessThan(0.25);
    expect(c.p).toBeLessThan(0.001);
    expect([c.improved, c.worsened]).toEqual([32, 0]);
    // sd of the differences (0.25 on half, 0 on half) = 0.12599; (1.95996 + 0.84162) * sd / sqrt(64)
    expect(c.mde80).toBeCloseTo((2.80158 * 0.125988) / 8, 4);
    expect(c.mde80).toBeLessThan(POWER_TARGET_POINTS / 100);
  });

  it("refuses arms evaluated on different problems", () => {
    expect(() => compareArms("x", scores([1, 0]), scores([1, 0, 1]), 0)).toThrow(/same problems/);
  });
});
