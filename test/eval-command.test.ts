// `promptcot eval` pieces that need no workers: maj@k by equivalence clusters, the summary's refusal of
// missing samples, and input errors (exit 2, naming what and where) before any worker starts.
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Benchmark } from "../src/eval/benchmarks.js";
import { summarizeBenchmark } from "../src/eval/bench-summary.js";
import { Journal } from "../src/experiment/journal.js";

const bench: Benchmark = {
  name: "toy", files: [], skipped: [],
  problems: [{ id: "p0", text: "?", kind: "math", answer: "2" }, { id: "p1", text: "?", kind: "math", answer: "3" }],
};
// "1/2" and "0.5" are one answer; anything else compares by string.
const eq = { equivalent: async (a: string, b: string) => ({ verdict: (a === b || [a, b].sort().join() === "0.5,1/2" ? "correct" : "incorrect") as "correct" | "incorrect", path: "fast" as const }) };
const rec = (problem_id: string, sample_idx: number, extracted: string | null, correct: boolean) =>
  ({ problem_id, sample_idx, extracted, correct, verdict: correct ? "correct" : "incorrect", finish_reason: "stop", response_tokens: 10 });

describe("eval summary", () => {
  it("maj@k follows the largest equivalence cluster; avg@k and pass@k count samples", async () => {
    const records = [
      rec("p0", 0, "1/2", false), rec("p0", 1, "0.5", false), rec("p0", 2, "2", true), // majority 1/2 ~ 0.5: wrong
      rec("p1", 0, "3", true), rec("p1", 1, "3", true), rec("p1", 2, "4", false), // majority 3: right
    ];
    const s = await summarizeBenchmark(records, bench, 3, 0, eq);
    expect(s.maj!.value).toBe(0.5);
    expect(s.avg.value).toBeCloseTo(0.5, 12);
    expect(s.pass_at.map((p) => [p.k, p.value])).toEqual([[1, expect.closeTo(0.5, 12)], [2, expect.closeTo((2 / 3 + 1) / 2, 12)], [3, 1]]);
  });
  it("refuses a problem without all its samples (never a silent 0)", async () => {
    await expect(summarizeBenchmark([rec("p0", 0, "2", true)], bench, 1, 0, eq)).rejects.toThrow(/toy: 1 problem\(s\) lack samples \(p1: 0\/1\); rerun/);
  });
});

const evalCli = (...args: string[]) => spawnSync("node", ["bin/promptcot.mjs", "eval", ...args], { encoding: "utf8" });

describe("promptcot eval input errors", () => {
  it("an unknown benchmark lists where it looked", () => {
    const r = evalCli("tiny-random-llama", "--bench", "nosuch", "--out", mkdtempSync(join(tmpdir(), "ev-")));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/benchmark 'nosuch' not found: .*data\/benchmarks.*shared\/data\/benchmarks/);
  });
  it("a missing checkpoint directory is named", () => {
    const r = evalCli("./runs/nope/checkpoints/step-1", "--bench", "test/fixtures/eval-bench-3.jsonl");
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/runs\/nope\/checkpoints\/step-1 does not exist/);
  });
  it("an eval directory drawn with other settings is refused, naming what changed", () => {
    const out = mkdtempSync(join(tmpdir(), "ev-"));
    const j = new Journal(join(out, "journal.sqlite"));
    j.setMeta("eval.settings", JSON.stringify({ model: "tiny-random-llama", k: 2, temperature: 0.6 }));
    j.close();
    const r = evalCli("tiny-random-llama", "--bench", "test/fixtures/eval-bench-3.jsonl", "-k", "3", "--out", out);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/holds samples drawn with other settings \(k: 2 -> 3;.*use another --out/);
  });
});
