// Code problems in the self-play loop: constructed completions written as rollout rows are judged by the
// real grade stage in the real bubblewrap sandbox, and the real pair builder pairs them by the sandbox's
// verdicts (AC chosen; WA/TLE/RE rejected; no code block dropped as invalid; a sandbox error set aside).
import { createHash } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadExperiment } from "../src/config/load.js";
import { ConfigError } from "../src/config/errors.js";
import { readProblemsJsonl, type Problem } from "../src/data/problems.js";
import type { RunContext } from "../src/experiment/context.js";
import { unitId } from "../src/experiment/ids.js";
import { Journal } from "../src/experiment/journal.js";
import { problemsFingerprint } from "../src/experiment/run-identity.js";
import { gradeStage, pairsStage, type GradeRecord } from "../src/selfplay/stages.js";
import { createMathGrader } from "../src/verify/math/grader.js";
import { createCodeGrader } from "../src/verify/code/grader.js";
import { codeToVerdict } from "../src/verify/dispatch.js";

const SUM: Problem = {
  id: "t0000", prompt: "Read two integers a and b; print a + b.", answer: "", source: "test", kind: "code",
  tests: [{ input: "2 2\n", output: "4\n" }, { input: "3 4\n", output: "7\n" }, { input: "-1 10\n", output: "9\n" }],
};
// tests a loader would refuse; the sandbox grader answers `error` (it cannot judge), never a verdict on the program
const BROKEN: Problem = { id: "t0001", prompt: "Print 1.", answer: "", source: "test", kind: "code", tests: [] };
const MATH: Problem = { id: "t0002", prompt: "What is 2 + 3?", answer: "5", source: "test" };

const fence = (code: string) => `Here is my solution.\n\`\`\`python\n${code}\n\`\`\`\n`;
const COMPLETIONS: Record<string, string[]> = {
  t0000: [
    fence("a, b = map(int, input().split())\nprint(a + b)"), // AC
    fence("import sys\nprint(sum(map(int, sys.stdin.read().split())))"), // AC, written differently
    fence("a, b = map(int, input().split())\nprint(a * b)"), // WA on test 1 (2*2 = 2+2 passes test 0)
    "The answer is a + b, computed by reading both numbers.", // no code block
    fence("while True:\n    pass"), // hangs: TLE
    fence("raise ValueError('boom')"), // RE
  ],
  t0001: [fence("print(1)"), fence("print(2)")],
  t0002: ["2 + 3 = 5, so \\boxed{5}.", "I think \\boxed{6}."],
};

const math = createMathGrader();
const code = createCodeGrader({ concurrency: 2, limits: { timeLimitMs: 1000, memoryMb: 256, sandboxMemoryMb: 768 } });
afterAll(async () => {
  await math.close();
  await code.close();
});

function context(): { ctx: RunContext; written: Record<string, unknown>[]; logs: string[]; journal: Journal } {
  const dir = mkdtempSync(join(tmpdir(), "pcot-code-loop-"));
  const journal = new Journal(join(dir, "journal.sqlite"));
  const cfg = loadExperiment("test/fixtures/tiny-selfplay.yaml", []).config;
  journal.record(Object.entries(COMPLETIONS).flatMap(([pid, texts]) => texts.map((text, i) => ({
    id: unitId(1, "rollout", pid, i), stage: "rollout", iteration: 1,
    result: { prompt_id: pid, sample: i, seed: i, text, token_ids: [], prompt_token_ids: [], finish_reason: "stop", prompt_opens_think: false },
  }))));
  const written: Record<string, unknown>[] = [];
  const logs: string[] = [];
  const ctx = {
    cfg, runDir: dir, configDir: "test/fixtures", journal, grader: math, codeGrader: code,
    problems: { train: [SUM, BROKEN, MATH], heldout: [] },
    metrics: { write: (r: Record<string, unknown>) => written.push(r) }, log: (m: string) => logs.push(m),
  };
  return { ctx: ctx as unknown as RunContext, written, logs, journal };
}

const grade = (journal: Journal, pid: string, i: number) => journal.get<GradeRecord>(unitId(1, "grade", pid, i))!;

describe("a code problem's rollouts in the loop", () => {
  it("are judged in the sandbox, journaled with the failing test, and paired by the sandbox's verdicts", async () => {
    const { ctx, written, logs, journal } = context();
    await gradeStage(ctx, 1);
    const sandbox = COMPLETIONS.t0000!.map((_, i) => grade(journal, "t0000", i).code?.verdict);
    expect(sandbox).toEqual(["AC", "AC", "WA", "no_code", "TLE", "RE"]);
    expect(COMPLETIONS.t0000!.map((_, i) => grade(journal, "t0000", i).verdict)).toEqual(["correct", "correct", "incorrect", "no_answer", "incorrect", "incorrect"]);
    expect(grade(journal, "t0000", 2).code).toMatchObject({ failed_test: 1 });
    expect(grade(journal, "t0000", 5).code!.stderr).toMatch(/ValueError: boom/);
    expect(grade(journal, "t0001", 0)).toMatchObject({ verdict: "error", code: { verdict: "error" } });
    // math problems in the same iteration still go to the math checker
    expect([grade(journal, "t0002", 0).verdict, grade(journal, "t0002", 1).verdict]).toEqual(["correct", "incorrect"]);
    expect(grade(journal, "t0002", 0).code).toBeUndefined();

    const pairs = await pairsStage(ctx, 1);
    const s = (pid: string, i: number) => unitId(1, "rollout", pid, i);
    // t0000: no-code sample dropped (invalid); pass rate 2/5; chosen in sample order vs WA, then TLE.
    // t0001: both samples are sandbox errors, set aside: no pair. t0002: rate 1/2 -> one pair.
    expect(pairs.map((p) => [p.chosen, p.rejected])).toEqual([
      [s("t0000", 0), s("t0000", 2)], [s("t0000", 1), s("t0000", 4)], [s("t0002", 0), s("t0002", 1)],
    ]);
    const m = written.find((r) => r.kind === "grading")!;
    expect(m).toMatchObject({
      error: 2, excluded: 2, pairs: 3,
      validity: { invalid: 1, no_code_block: 1 },
      by_kind: {
        code: { samples: 8, AC: 2, WA: 1, TLE: 1, RE: 1, no_code: 1, error: 2, MLE: 0, OLE: 0 },
        math: { samples: 2, correct: 1, incorrect: 1 },
      },
    });
    expect(logs.join("\n")).toMatch(/8 code samples judged in the sandbox \(AC 2, WA 1, TLE 1, RE 1, no_code 1, error 2\)/);
    journal.close();
  }, 120_000);

  it("maps sandbox verdicts onto the pair scale: only AC is correct, error is a grader failure", () => {
    expect(["AC", "WA", "TLE", "MLE", "RE", "OLE", "no_code", "error"].map((v) => codeToVerdict(v as never)))
      .toEqual(["correct", "incorrect", "incorrect", "incorrect", "incorrect", "incorrect", "no_answer", "error"]);
  });
});

describe("problem rows by kind", () => {
  const file = (rows: string[]) => {
    const f = join(mkdtempSync(join(tmpdir(), "pcot-rows-")), "p.jsonl");
    writeFileSync(f, rows.join("\n"));
    return f;
  };
  const bad = (row: string) => {
    try {
      readProblemsJsonl(file(['{"prompt": "What is 1 + 1?", "answer": "2"}', row]), "t");
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as ConfigError).format();
    }
    throw new Error("row was accepted");
  };

  it("mixes math rows and code rows (test_cases as synth-tests writes them, or tests)", () => {
    const rows = readProblemsJsonl(file([
      '{"prompt": "What is 1 + 1?", "answer": "2"}',
      '{"id": "p00003", "prompt": "Echo.", "test_cases": [{"input": "x\\n", "output": "x\\n"}], "source": "synth"}',
      '{"prompt": "Echo again.", "tests": [{"input": "y", "output": "y"}], "kind": "code"}',
    ]), "t");
    expect(rows.map((r) => [r.id, r.kind ?? "math", r.tests?.length ?? 0])).toEqual([["t0000", "math", 0], ["t0001", "code", 1], ["t0002", "code", 1]]);
    expect(rows[1]).toMatchObject({ answer: "", source: "synth", tests: [{ input: "x\n", output: "x\n" }] });
  });

  it("refuses bad code rows naming the line, the field and the fix", () => {
    expect(bad('{"prompt": "E.", "test_cases": []}')).toMatch(/:2.*'test_cases' is empty: a code problem needs at least one test/);
    expect(bad('{"prompt": "E.", "test_cases": [{"input": "1"}]}')).toMatch(/'test_cases\[0\]\.output' is missing; it must be a string/);
    expect(bad('{"prompt": "E.", "tests": [{"input": 1, "output": "1"}]}')).toMatch(/'tests\[0\]\.input' is a number \(1\)/);
    expect(bad('{"prompt": "E.", "test_cases": {"input": "1"}}')).toMatch(/'test_cases' is an object, not an array/);
    expect(bad('{"prompt": "E.", "kind": "code"}')).toMatch(/a code row \(kind "code"\) has no 'test_cases'/);
    expect(bad('{"prompt": "E.", "answer": "1", "kind": "math", "tests": [{"input": "", "output": ""}]}')).toMatch(/set "kind": "code"/);
    expect(bad('{"prompt": "E.", "kind": "proof", "answer": "1"}')).toMatch(/'kind' is a string \("proof"\); it must be "math" or "code"/);
    expect(bad('{"prompt": "E.", "test_cases": [], "tests": []}')).toMatch(/both 'test_cases' and 'tests'/);
  });

  it("the run fingerprint covers a code problem's tests; math rows hash as before", () => {
    const a = problemsFingerprint([SUM], "");
    const edited = { ...SUM, tests: [...SUM.tests!.slice(0, 2), { input: "-1 10\n", output: "8\n" }] };
    expect(problemsFingerprint([edited], "").sha256).not.toBe(a.sha256);
    expect(problemsFingerprint([{ ...SUM, tests: SUM.tests!.slice(0, 2) }], "").sha256).not.toBe(a.sha256);
    // a math row hashes by the formula used before problems had kinds (sha256 over [id, prompt, answer] lines): old runs still resume
    const legacy = createHash("sha256").update(`${JSON.stringify([MATH.id, MATH.prompt, MATH.answer])}\n`).digest("hex");
    expect(problemsFingerprint([MATH], "").sha256).toBe(legacy);
  });
});
