// End to end on a tiny random model with math and code problems mixed in one JSONL: code samples are graded
// by the sandbox grader (their records carry its verdict), math samples by the checker, the counts by kind
// reach metrics.jsonl and report.md, held-out code problems are graded the same way, and a SIGKILLed run
// resumes to the same journal. The random model never writes a fenced block, so its code verdicts are
// no_code: program execution in the sandbox is covered with constructed completions in selfplay-code.test.ts.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { countUnits, processesOfRun, startRun, units, waitFor, VALIDITY_OFF_FOR_RANDOM_MODEL } from "./helpers/run-harness.js";

const EXP = "test/fixtures/tiny-mixed.yaml";
const CODE_PROMPTS = new Set(["t0001", "t0003"]);

describe("self-play on mixed math + code problems (tiny random model)", () => {
  it("grades each kind with its grader, counts by kind, and resumes after a SIGKILL", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "pcot-mixed-")), "run");
    const args = [EXP, "--run-dir", dir, ...VALIDITY_OFF_FOR_RANDOM_MODEL];
    const first = startRun(args);
    await waitFor(() => countUnits(dir, "rollout") >= 3, 300_000, "some rollout units");
    first.child.kill("SIGKILL");
    await first.done;
    const partial = countUnits(dir, "rollout");
    expect(partial).toBeLessThan(16);
    await waitFor(() => processesOfRun(dir).length === 0, 15_000, "the orphaned worker to exit");
    const before = units(dir, "rollout");

    const second = await startRun(args).done;
    expect(second.code, second.out).toBe(0);
    expect(second.out).toContain("resuming run");
    const rollout = units(dir, "rollout");
    expect(rollout.size).toBe(16);
    for (const [id, r] of before) expect(rollout.get(id), id).toBe(r); // journaled samples kept, not redone

    const grades = [...units(dir, "grade")].map(([id, r]) => ({ pid: id.split("/")[2]!, r: JSON.parse(r) as { verdict: string; code?: { verdict: string } } }));
    expect(grades).toHaveLength(16);
    for (const g of grades) {
      if (CODE_PROMPTS.has(g.pid)) expect(g.r.code?.verdict, g.pid).toMatch(/^(AC|WA|TLE|MLE|RE|OLE|no_code)$/);
      else expect(g.r.code, g.pid).toBeUndefined();
    }
    const evals = [...units(dir, "eval")].map(([, r]) => JSON.parse(r) as { prompt_id: string; code?: { verdict: string } });
    expect(evals.filter((e) => e.prompt_id === "h0001").every((e) => e.code !== undefined)).toBe(true);
    expect(evals.filter((e) => e.prompt_id === "h0000").every((e) => e.code === undefined)).toBe(true);

    const metrics = readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    const grading = metrics.find((m) => m.kind === "grading") as { by_kind: { code: Record<string, number>; math: Record<string, number> } };
    expect(grading.by_kind.code.samples).toBe(8);
    expect(grading.by_kind.math.samples).toBe(8);
    const codeVerdicts = Object.entries(grading.by_kind.code).filter(([k]) => k !== "samples").reduce((a, [, n]) => a + n, 0);
    expect(codeVerdicts).toBe(8);
    const exported = readFileSync(join(dir, "artifacts", "it001", "samples.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    const codeLine = exported.find((l) => l.id === "t0001")!;
    expect(codeLine.test_cases).toEqual([{ input: "1 2\n", output: "3\n" }, { input: "10 -4\n", output: "6\n" }]);
    expect(codeLine.test_results).toHaveLength(4);
    expect(exported.find((l) => l.id === "t0000")!.test_cases).toBeUndefined();
    const report = readFileSync(join(dir, "report.md"), "utf8");
    expect(report).toMatch(/1\s+code \(sandbox\)\s+8\s+/);
    expect(report).toMatch(/1\s+math\s+8\s+/);
  }, 600_000);
});
