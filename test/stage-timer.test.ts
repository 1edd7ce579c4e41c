// The report's stage table (src/eval/report.ts) lists StageTimer's rows plus the untimed rest: rows must never
// count a second twice, or the rest goes negative and a stage's share is wrong.
import { describe, expect, it } from "vitest";
import { StageTimer } from "../src/telemetry/metrics.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("StageTimer", () => {
  it("counts a phase timed inside another only in the inner row, so the rows add up to the wall time", async () => {
    const timer = new StageTimer();
    const t0 = performance.now();
    await timer.time("regime", async () => {
      await sleep(60);
      await timer.time("evaluate", () => sleep(120));
      await Promise.all([timer.time("generate", () => sleep(80)), sleep(10)]);
    });
    await timer.time("evaluate", () => sleep(40));
    const wall = (performance.now() - t0) / 1000;
    const s = Object.fromEntries(timer.seconds);
    const sum = Object.values(s).reduce((a, b) => a + b, 0);
    expect(sum).toBeLessThanOrEqual(wall + 1e-3);
    expect(sum).toBeGreaterThan(wall - 0.02);
    expect(s.evaluate).toBeGreaterThanOrEqual(0.155);
    expect(s.generate).toBeGreaterThanOrEqual(0.075);
    expect(s.regime).toBeGreaterThanOrEqual(0.055);
    expect(s.regime).toBeLessThan(0.12); // its own 60 ms (and the await gaps), not the 200 ms inside it
  });
});
