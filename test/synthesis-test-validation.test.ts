// Synthesized tests checked before use: constructed teacher solutions (code strings) run in the real
// sandbox; a test whose expected output the solutions that pass the other tests do not print is dropped,
// with its reason. The journaled pipeline reruns without asking the teacher again.
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Journal } from "../src/experiment/journal.js";
import { createCodeGrader, type CodeGraderHandle } from "../src/verify/code/index.js";
import { VALIDATE_STAGE, journaledTestSynthesis, type ValidateRecord } from "../src/synthesis/test-case-stage.js";
import { decideTests, validateTests } from "../src/synthesis/test-validation.js";
import type { GenRequest, Generator } from "../src/synthesis/teacher.js";

let g: CodeGraderHandle;
beforeAll(() => {
  g = createCodeGrader({ concurrency: 2, limits: { timeLimitMs: 2000, memoryMb: 256, sandboxMemoryMb: 768 } });
});
afterAll(() => g.close());

const SUM = "a, b = map(int, input().split())\nprint(a + b)\n";
const SUM_TOO = "import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))\n";
const PRODUCT = "a, b = map(int, input().split())\nprint(a * b)\n"; // wrong: passes only 2 2
const CRASH = "raise SystemExit(3)\n";

describe("test validation in the sandbox", () => {
  it("drops a test whose expected output the solutions passing the other tests disagree with", async () => {
    const tests = [
      { input: "1 2\n", output: "3\n" },
      { input: "2 2\n", output: "4\n" },
      { input: "5 7\n", output: "13\n" }, // wrong expected output: 5 + 7 = 12
      { input: "10 20\n", output: "30\n" },
    ];
    const r = await validateTests(g, [SUM, SUM_TOO, PRODUCT, CRASH], tests);
    expect(r.kept).toEqual([tests[0], tests[1], tests[3]]);
    expect(r.dropped).toEqual([{ test: tests[2], reason: "disagreement", detail: "0 of 2 solutions that pass the other tests print the expected output" }]);
    expect(r.verdicts[2]).toEqual(["WA", "AC", "WA", "WA"]); // the product program
    expect(r.verdicts[3]!.every((v) => v === "RE")).toBe(true);
  }, 120_000);

  it("with no solution passing the other tests, every test is dropped as unchecked", async () => {
    const tests = [{ input: "1 2\n", output: "3\n" }, { input: "2 3\n", output: "5\n" }];
    const r = await validateTests(g, [CRASH], tests);
    expect(r.kept).toEqual([]);
    expect(r.dropped.map((d) => d.reason)).toEqual(["no_passing_solution", "no_passing_solution"]);
  }, 60_000);
});

describe("decideTests (pure)", () => {
  const t = (i: number) => ({ input: `${i}\n`, output: `${i}\n` });
  it("needs every supporter to agree by default; a lower bar keeps a majority", () => {
    const v = [["AC", "AC"], ["AC", "WA"], ["AC", "AC"]] as const;
    const strict = decideTests([t(0), t(1)], v.map((r) => [...r]));
    expect(strict.kept).toEqual([t(0)]);
    expect(strict.dropped[0]).toMatchObject({ reason: "disagreement", detail: "2 of 3 solutions that pass the other tests print the expected output" });
    expect(decideTests([t(0), t(1)], v.map((r) => [...r]), { minAgreement: 0.5 }).kept).toEqual([t(0), t(1)]);
  });
  it("a sandbox error is not a vote: it drops the test as sandbox_error", () => {
    expect(decideTests([t(0), t(1)], [["AC", "error"]]).dropped.map((d) => d.reason)).toEqual(["sandbox_error", "sandbox_error"]);
    expect(decideTests([t(0)], []).dropped.map((d) => d.reason)).toEqual(["no_passing_solution"]);
  });
});

/** A teacher whose test-case replies and solutions are fixed text (the tiny model's are random). */
function scripted(): Generator & { asked: number } {
  const tc = ['```json\n{"input": "1 2", "output": "3"}\n```', '```json\n{"input": "4 4", "output": "9"}\n```', '```json\n{"input": "0 5", "output": "5"}\n```'];
  const teacher = {
    name: "scripted",
    asked: 0,
    async generate(reqs: GenRequest[], _s: unknown, onSample: Parameters<Generator["generate"]>[2]) {
      for (const r of reqs) {
        for (const s of r.samples) {
          teacher.asked++;
          const round = r.id.includes("#tc") ? Number(r.id.split("#tc")[1]) : -1;
          const text = round >= 0 ? tc[round]! : `Here:\n\`\`\`python\n${s.index === 0 ? SUM : SUM_TOO}\`\`\``;
          await onSample({ id: r.id, index: s.index, text, finishReason: "stop", promptOpensThink: false });
        }
      }
    },
  };
  return teacher;
}

describe("journaled test synthesis", () => {
  it("journals rounds, solutions and the validation; a rerun asks the teacher for nothing", async () => {
    const journal = new Journal(join(mkdtempSync(join(tmpdir(), "pcot-tv-")), "journal.sqlite"));
    const o = { rounds: 3, solutions: 2, seed: 0, sampling: { temperature: 1, top_p: 1, max_tokens: 8, prompts_per_request: 2 } };
    const teacher = scripted();
    const r = await journaledTestSynthesis([{ id: "sum", prompt: "Print a + b." }], teacher, journal, g, o);
    expect(teacher.asked).toBe(5);
    expect(r.problems[0]!.test_cases).toEqual([{ input: "1 2\n", output: "3" }, { input: "0 5\n", output: "5" }]);
    expect(r.stats).toMatchObject({ parsed: 3, kept_tests: 2, dropped: { disagreement: 1, no_passing_solution: 0, sandbox_error: 0 }, kept_problems: 1 });
    const unit = journal.get<ValidateRecord>(`${VALIDATE_STAGE}/sum`)!;
    expect(unit.dropped[0]).toMatchObject({ test: { input: "4 4\n", output: "9" }, reason: "disagreement" });
    const again = scripted();
    const r2 = await journaledTestSynthesis([{ id: "sum", prompt: "Print a + b." }], again, journal, g, o);
    expect(again.asked).toBe(0);
    expect(r2).toEqual(r);
    journal.close();
  }, 120_000);

  it("promptcot synth-tests on the real worker journals per problem and round; a rerun generates nothing", () => {
    const d = mkdtempSync(join(tmpdir(), "pcot-tv-cli-"));
    const input = join(d, "problems.jsonl");
    writeFileSync(input, ['{"id":"a","prompt":"Read n and print n+1."}', '{"id":"b","prompt":"Echo the input."}'].join("\n"));
    const args = ["bin/promptcot.mjs", "synth-tests", "--in", input, "--out", join(d, "out.jsonl"), "--rounds", "2", "--solutions", "1",
      "--model", "tiny-random-llama", "--max-tokens", "8", "--run-dir", join(d, "run")];
    const first = spawnSync("node", args, { encoding: "utf8", timeout: 240_000 });
    expect(first.status, first.stderr).toBe(0);
    const second = spawnSync("node", args, { encoding: "utf8", timeout: 240_000 });
    expect(second.status, second.stderr).toBe(0);
    const db = new Database(join(d, "run", "journal.sqlite"), { readonly: true });
    const count = (stage: string) => (db.prepare("SELECT COUNT(*) AS n FROM units WHERE stage = ?").get(stage) as { n: number }).n;
    const ev = (kind: string) => (db.prepare("SELECT COUNT(*) AS n FROM events WHERE kind = ?").get(kind) as { n: number }).n;
    expect([count("tests/round"), count("tests/solution"), count("tests/validate")]).toEqual([4, 2, 2]);
    expect([ev("tests_generate"), ev("tests_solve")]).toEqual([1, 1]); // the first run only
    db.close();
  }, 300_000);
});
