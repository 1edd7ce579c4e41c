// The teacher's vote measured on known answers: kept references and their precision per (samples, threshold).
import { describe, expect, it } from "vitest";
import { precisionTable } from "../src/synthesis/teacher-precision.js";

const exact = async (a: string, b: string) => a.trim() === b.trim();

describe("teacher precision table", () => {
  it("votes the first k samples at each threshold and counts the kept references that are right", async () => {
    const problems = [
      { id: "a", known: "5", answers: ["5", "5", "5", "7"] },   // k2: 5 (1.0) right; k4: 5 (0.75) right
      { id: "b", known: "9", answers: ["8", "8", "9", "9"] },   // k2: 8 (1.0) wrong; k4: a 2-2 tie at 0.5
      { id: "c", known: "3", answers: [null, "3", null, null] }, // k2: 3 at 0.5; k4: 3 at 0.25
    ];
    const rows = await precisionTable(problems, [2, 4], [0.5, 1], exact);
    const row = (k: number, t: number) => rows.find((r) => r.samples === k && r.min_agreement === t)!;
    expect([row(2, 0.5).kept, row(2, 0.5).right]).toEqual([3, 2]);
    expect([row(2, 1).kept, row(2, 1).right]).toEqual([2, 1]);
    expect(row(4, 1).kept).toBe(0);
    expect(Number.isNaN(row(4, 1).precision)).toBe(true);
    expect(row(4, 0.5).kept).toBe(2); // a (0.75) and b's 2-2 tie (0.5, the first class by the vote's rule)
    expect(row(2, 0.5).precision).toBeCloseTo(2 / 3, 10);
    expect(row(2, 0.5).ci.lo).toBeLessThan(2 / 3);
  });

  it("refuses a setting with more samples than were drawn", async () => {
    await expect(precisionTable([{ id: "a", known: "1", answers: ["1"] }], [2], [0.5], exact)).rejects.toThrow(/fewer than 2/);
  });
});
