// `promptcot trace ID` over the journals the references and synth-tests code paths write: the teacher's
// samples, vote classes, agreement and the keep/drop decision; each test round, what merging and
// validation did with each test and why, and the teacher solutions' sandbox verdicts. Ids are content
// hashes (found by prefix) or row ids (found exactly). The journals come from the real referenceStage /
// journaledTestSynthesis (real math checker, real sandbox) with a scripted teacher, and from the real CLI
// commands on a tiny random model.
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { traceCommand } from "../src/cli/trace.js";
import { Journal } from "../src/experiment/journal.js";
import { problemId } from "../src/synthesis/provenance.js";
import { referenceStage } from "../src/synthesis/references.js";
import type { GenRequest, Generator } from "../src/synthesis/teacher.js";
import { journaledTestSynthesis } from "../src/synthesis/test-case-stage.js";
import { createCodeGrader } from "../src/verify/code/grader.js";
import { createMathGrader } from "../src/verify/math/grader.js";

const math = createMathGrader();
const code = createCodeGrader({ concurrency: 2, limits: { timeLimitMs: 2000, memoryMb: 256, sandboxMemoryMb: 768 } });
afterAll(async () => {
  await math.close();
  await code.close();
});

const HALF = { prompt: "What is 1/2 as a fraction?" };
const SPLIT = { prompt: "Pick a number." };
const SUM = { id: "p00001", prompt: "Read a and b; print a + b." };
const ANSWERS: Record<string, (string | null)[]> = {
  [problemId(HALF.prompt)]: ["\\frac{1}{2}", "0.5", "3", null],
  [problemId(SPLIT.prompt)]: ["1", "2", "3", "4"],
};
const ROUNDS = [
  '```json\n{"input": "1 2", "output": "3"}\n```', '```json\n{"input": "4 4", "output": "9"}\n```', '```json\n{"input": "0 5", "output": "5"}\n```',
  '```json\n{"input": "1 2", "output": "3"}\n```', "I cannot write a test.",
];
const SOLUTIONS = [
  "```python\na, b = map(int, input().split())\nprint(a + b)\n```",
  "```python\nimport sys\nprint(sum(int(x) for x in sys.stdin.read().split()))\n```",
  "Just add the two numbers.",
];

/** A teacher with fixed replies (the tiny model's are random): boxed answers, test rounds, solutions. */
const scripted: Generator = {
  name: "scripted",
  async generate(reqs: GenRequest[], _s, onSample) {
    for (const r of reqs) {
      for (const s of r.samples) {
        const round = r.id.includes("#tc") ? Number(r.id.split("#tc")[1]) : -1;
        const answer = ANSWERS[r.id]?.[s.index];
        const text = round >= 0 ? ROUNDS[round]! : r.id === SUM.id ? SOLUTIONS[s.index]! : answer ? `So \\boxed{${answer}}.` : "I ran out of";
        await onSample({ id: r.id, index: s.index, text, finishReason: answer === null ? "length" : "stop", promptOpensThink: false });
      }
    }
  },
};

function trace(id: string, runDir: string): { code: number; text: string } {
  let text = "";
  const code = traceCommand(id, { runDir }, (s) => (text += s));
  return { code, text };
}

describe("trace: references and tests", () => {
  it("shows the vote and the tests' validation, by content-hash prefix or row id", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pcot-trace-labels-"));
    const journal = new Journal(join(dir, "journal.sqlite"));
    const sampling = { temperature: 1, top_p: 1, max_tokens: 8, prompts_per_request: 2 };
    const mathProblems = [HALF, SPLIT].map((p) => ({ id: problemId(p.prompt), ...p }));
    await referenceStage(mathProblems, scripted, journal, { samples: 4, minAgreement: 0.5, seed: 0, sampling }, math);
    await journaledTestSynthesis([SUM], scripted, journal, code, { rounds: 5, solutions: 3, seed: 0, sampling });
    journal.close();

    const half = trace(problemId(HALF.prompt).slice(0, 6), dir);
    expect(half.code).toBe(0);
    expect(half.text).toContain(`problem ${problemId(HALF.prompt)}`);
    expect(half.text).toContain("teacher scripted");
    expect(half.text).toMatch(/sample 0: answer "\\\\frac\{1\}\{2\}"\n\s+sample 1: answer "0.5"\n\s+sample 2: answer "3"\n\s+sample 3: no answer \(cut at max_tokens\)/);
    expect(half.text).toContain('vote classes (answers grouped by mathematical equivalence): "\\\\frac{1}{2}" ×2, "3" ×1; no answer ×1');
    expect(half.text).toContain("agreement: 2 of 4 samples (50%)");
    expect(half.text).toContain('KEPT: reference answer "\\\\frac{1}{2}" (agreement at or above the minimum agreement 50%)');

    const split = trace(problemId(SPLIT.prompt), dir);
    expect(split.text).toContain("DROPPED: agreement 25% is below the minimum agreement 50%");

    const sum = trace("p00001", dir);
    expect(sum.code).toBe(0);
    expect(sum.text).toContain("synthesized tests (5 rounds");
    expect(sum.text).toMatch(/round 1: "4 4(\\n)?" -> "9(\\n)?" \(test 1\)/);
    expect(sum.text).toMatch(/round 3: .* \(duplicate of round 0\)/);
    expect(sum.text).toContain("round 4: malformed");
    expect(sum.text).toContain("teacher solutions: 3, 2 with a program (#2 no code block)");
    expect(sum.text).toMatch(/test 0 "1 2(\\n)?" -> "3(\\n)?": KEPT; solutions: #0 AC, #1 AC/);
    expect(sum.text).toMatch(/test 1 "4 4(\\n)?" -> "9(\\n)?": DROPPED \(disagreement: 0 of 2 solutions that pass the other tests print the expected output\); solutions: #0 WA, #1 WA/);
    expect(sum.text).toContain("problem KEPT with 2 test(s)");

    expect(trace("p0000", dir).code).toBe(1); // a row id is matched exactly, never as a prefix
    expect(trace("has space", dir).code).toBe(2);
  }, 120_000);

  it("finds row ids in a run written by the real `references` and `synth-tests` commands (tiny random teacher)", () => {
    const d = mkdtempSync(join(tmpdir(), "pcot-trace-cli-"));
    const input = join(d, "problems.jsonl");
    writeFileSync(input, '{"prompt": "Read n and print n + 1."}\n');
    const run = (args: string[]) => spawnSync("node", ["bin/promptcot.mjs", ...args, "--in", input, "--max-tokens", "8", "--run-dir", join(d, "run")], { encoding: "utf8", timeout: 240_000 });
    const refs = run(["references", "--out", join(d, "refs.jsonl"), "--teacher", "tiny-random-llama", "-n", "2"]);
    expect(refs.status, refs.stderr).toBe(0);
    const tests = run(["synth-tests", "--out", join(d, "tests.jsonl"), "--model", "tiny-random-llama", "--rounds", "2", "--solutions", "1"]);
    expect(tests.status, tests.stderr).toBe(0);
    const t = spawnSync("node", ["bin/promptcot.mjs", "trace", "p00000", "--run-dir", join(d, "run")], { encoding: "utf8" });
    expect(t.status, t.stderr).toBe(0);
    expect(t.stdout).toContain("math reference (teacher majority vote, teacher worker:tiny-random-llama)");
    expect(t.stdout).toMatch(/sample 0: .*\n\s+sample 1: /);
    expect(t.stdout).toMatch(/(KEPT|DROPPED): /);
    expect(t.stdout).toMatch(/synthesized tests \(2 rounds[^]*round 0: [^]*round 1: [^]*teacher solutions: 1/);
    expect(t.stdout).toMatch(/problem (KEPT|DROPPED)/);
  }, 600_000);
});
