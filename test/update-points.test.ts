// Which journaled resumable points an update may continue from, and their pruning (src/train/update-points.ts).
// The recovery path itself (kills after a point, during a point's save, of the controller) runs for real in
// test/resume-trainer.test.ts.
import { existsSync, mkdirSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { planIdentity, prunePoints, usablePoints, type PointRecord } from "../src/train/update-points.js";

const UNIT = "it002/update";
const PLAN = planIdentity([UNIT, 4, [[{ id: "a" }], [{ id: "b" }]]]);
const row = (unit: string, done: number, every: number, plan = PLAN) => ({
  id: `${unit}/point/${String(done).padStart(6, "0")}`,
  result: {
    plan, steps_done: done, global_step: 4 + done, checkpoint: `/run/checkpoints/points/step-${4 + done}`,
    steps: Array.from({ length: every }, (_, i) => ({ step: 4 + done - every + i + 1 })),
  } satisfies PointRecord,
});

describe("usablePoints", () => {
  it("keeps the update's own points of its plan, oldest first, whose rows cover steps 1..k", () => {
    const rows = [row(UNIT, 4, 2), row("it002/proposer_update", 2, 2), row(UNIT, 2, 2)];
    const got = usablePoints(rows, UNIT, PLAN);
    expect(got.map((p) => p.steps_done)).toEqual([2, 4]);
    expect(got.flatMap((p) => p.steps.map((s) => s.step))).toEqual([5, 6, 7, 8]);
  });

  it("never loads a point of another plan (other batches, hyperparameters or start step), nor any after it", () => {
    const other = planIdentity([UNIT, 4, [[{ id: "a" }], [{ id: "c" }]]]);
    expect(other).not.toBe(PLAN);
    expect(usablePoints([row(UNIT, 2, 2), row(UNIT, 4, 2, other), row(UNIT, 6, 2)], UNIT, PLAN).map((p) => p.steps_done)).toEqual([2]);
    expect(usablePoints([row(UNIT, 2, 2, other)], UNIT, PLAN)).toEqual([]);
  });

  it("stops at a gap: a point whose rows do not start where the previous one ended", () => {
    expect(usablePoints([row(UNIT, 2, 2), row(UNIT, 6, 2)], UNIT, PLAN).map((p) => p.steps_done)).toEqual([2]);
  });
});

describe("prunePoints", () => {
  const root = mkdtempSync(join(tmpdir(), "pcot-points-")); // under the file's temp root (test/helpers/temp-root.ts)

  it("removes points and interrupted saves up to a step, and the directory once it is empty", () => {
    const dir = join(root, "points");
    for (const f of ["step-5", "step-6.tmp-123", "step-7", "step-10"]) mkdirSync(join(dir, f), { recursive: true });
    prunePoints(root, 6);
    expect(readdirSync(dir).sort()).toEqual(["step-10", "step-7"]);
    prunePoints(root, 10);
    expect(existsSync(dir)).toBe(false);
    prunePoints(root, 10); // nothing there: a no-op
  });
});
