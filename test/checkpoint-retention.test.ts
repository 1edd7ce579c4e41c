import { describe, expect, it } from "vitest";
import { bestOf, checkpointsToDelete, type CheckpointInfo } from "../src/train/retention.js";

const ck = (step: number, metric?: number): CheckpointInfo => ({ iteration: step, step, path: `/r/checkpoints/step-${step}`, metric });
const steps = (cs: CheckpointInfo[]) => cs.map((c) => c.step);

describe("checkpoint retention (pure decision)", () => {
  it("keep_last 0 keeps everything", () => {
    expect(checkpointsToDelete([ck(1), ck(2), ck(3)], { keep_last: 0 })).toEqual([]);
  });

  it("keep_last N deletes all but the newest N, whatever the input order", () => {
    expect(steps(checkpointsToDelete([ck(4), ck(1), ck(3), ck(2)], { keep_last: 2 }))).toEqual([1, 2]);
  });

  it("never deletes the newest (the resume point), even with keep_last 1 and a better older one", () => {
    const cs = [ck(1, 0.9), ck(2, 0.1), ck(3, 0.2)];
    const del = checkpointsToDelete(cs, { keep_last: 1, keep_best: { metric: "avg_at_k", mode: "max" } });
    expect(steps(del)).toEqual([2]);
  });

  it("keep_best keeps the best by mode (max or min); unevaluated checkpoints are never best", () => {
    const cs = [ck(1, 0.5), ck(2), ck(3, 0.2), ck(4, 0.3), ck(5)];
    expect(steps(checkpointsToDelete(cs, { keep_last: 1, keep_best: { metric: "avg_at_k", mode: "max" } }))).toEqual([2, 3, 4]);
    expect(steps(checkpointsToDelete(cs, { keep_last: 1, keep_best: { metric: "avg_at_k", mode: "min" } }))).toEqual([1, 2, 4]);
  });

  it("a tie for best keeps the newer checkpoint; NaN metrics are ignored", () => {
    expect(bestOf([ck(1, 0.5), ck(2, NaN), ck(3, 0.5), ck(4, 0.25)], "max")?.step).toBe(3);
    expect(bestOf([ck(1), ck(2, NaN)], "max")).toBeUndefined();
  });

  it("the newest and the best always survive, for every keep_last and every arrangement", () => {
    for (let n = 1; n <= 6; n++) {
      for (let keep = 1; keep <= n + 1; keep++) {
        const cs = Array.from({ length: n }, (_, i) => ck(i + 1, ((i * 7) % 5) / 5));
        const del = new Set(steps(checkpointsToDelete(cs, { keep_last: keep, keep_best: { metric: "avg_at_k", mode: "max" } })));
        expect(del.has(n)).toBe(false);
        expect(del.has(bestOf(cs, "max")!.step)).toBe(false);
        expect(n - del.size).toBe(Math.min(n, keep + (bestOf(cs, "max")!.step > n - keep ? 0 : 1)));
      }
    }
  });
});
