// Math references by teacher majority vote: the vote groups by mathematical equivalence, low agreement
// drops the problem with a count, and a SIGKILLed `promptcot references` resumes without redoing units.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { Journal } from "../src/experiment/journal.js";
import { createMathGrader } from "../src/verify/math/grader.js";
import { REFERENCE_INSTRUCTION, SAMPLE_STAGE, referenceMessages, referenceStage, sampleAnswer, voteAnswers } from "../src/synthesis/references.js";
import type { GenRequest, Generator } from "../src/synthesis/teacher.js";
import { countUnits, waitFor } from "./helpers/run-harness.js";

const grader = createMathGrader();
afterAll(() => grader.close());

/** A teacher whose sample i of problem p says `answers[p][i]` (constructed: the tiny model's text is random). */
function scripted(answers: Record<string, string[]>): Generator & { asked: string[] } {
  const asked: string[] = [];
  return {
    name: "scripted",
    asked,
    async generate(reqs: GenRequest[], _s, onSample) {
      for (const r of reqs) {
        for (const s of r.samples) {
          asked.push(`${r.id}#${s.index}`);
          await onSample({ id: r.id, index: s.index, text: `Work... so the answer is \\boxed{${answers[r.id]![s.index]}}.`, finishReason: "stop", promptOpensThink: false });
        }
      }
    },
  };
}

const sampling = { temperature: 1, top_p: 1, max_tokens: 8, prompts_per_request: 2 };

describe("reference vote", () => {
  it("groups \\frac{1}{2}, 0.5 and 1/2 as one class and picks it over a more frequent-looking string", async () => {
    const v = await voteAnswers(["3", "\\frac{1}{2}", "3", "0.5", "1/2", "\\dfrac12", null, "7"], 0.5, grader);
    expect(v.classes[0]).toEqual({ answer: "\\frac{1}{2}", count: 4 });
    expect(v.answer).toBe("\\frac{1}{2}");
    expect(v.agreement).toBe(4 / 8); // the unanswered sample is a vote for nothing
    expect(v.kept).toBe(true);
    expect(v.classes.map((c) => c.count)).toEqual([4, 2, 1]);
  });

  it("a truncated sample or an open think block gives no answer", () => {
    expect(sampleAnswer({ text: "\\boxed{4}", finishReason: "length", promptOpensThink: false })).toBeNull();
    expect(sampleAnswer({ text: "maybe \\boxed{4}", finishReason: "stop", promptOpensThink: true })).toBeNull();
    expect(sampleAnswer({ text: "hm</think> \\boxed{4}", finishReason: "stop", promptOpensThink: true })).toBe("4");
  });

  it("writes the voted answer back, drops problems below the agreement with a count, and reuses journaled samples", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pcot-ref-"));
    const journal = new Journal(join(dir, "journal.sqlite"));
    const problems = [
      { id: "agree", prompt: "What is 1/2?", source: "syn" },
      { id: "split", prompt: "Guess." },
      { id: "none", prompt: "Nothing." },
    ];
    const teacher = scripted({
      agree: ["0.5", "\\frac{1}{2}", "1/2", "2/4", "0.25", "1", "\\frac12", "9"],
      split: ["1", "2", "3", "4", "1", "2", "5", "6"],
      none: ["", "", "", "", "", "", "", ""],
    });
    const o = { samples: 8, minAgreement: 0.5, seed: 1, sampling };
    const r = await referenceStage(problems, teacher, journal, o, grader);
    expect(r.rows).toEqual([{ id: "agree", prompt: "What is 1/2?", source: "syn", answer: "0.5", answer_agreement: 5 / 8 }]);
    expect(r.stats).toMatchObject({ problems: 3, kept: 1, dropped_low_agreement: 2, samples_generated: 24 });
    expect(teacher.asked).toHaveLength(24);
    // a second pass over the same journal asks nothing and gives the same rows; a lower bar keeps "split"
    const again = scripted({});
    const r2 = await referenceStage(problems, again, journal, { ...o, minAgreement: 0.25 }, grader);
    expect(again.asked).toEqual([]);
    expect(r2.rows.map((x) => [x.id, x.answer, x.answer_agreement])).toEqual([["agree", "0.5", 5 / 8], ["split", "1", 2 / 8]]);
    journal.close();
  });
});

describe("teacher instruction", () => {
  it("follows each problem (and each worked turn) in the teacher's prompt; PromptCoT's when none is given", async () => {
    const seen: string[] = [];
    const teacher: Generator = {
      name: "recording",
      async generate(reqs, _s, onSample) {
        for (const r of reqs) {
          seen.push(r.messages.at(-1)!.content);
          for (const x of r.samples) await onSample({ id: r.id, index: x.index, text: "\\boxed{2}", finishReason: "stop", promptOpensThink: false });
        }
      },
    };
    const problems = [{ id: "p", prompt: "  What is 1 + 1?  " }];
    const o = { samples: 1, minAgreement: 0.5, seed: 1, sampling };
    await referenceStage(problems, teacher, new Journal(join(mkdtempSync(join(tmpdir(), "pcot-ref-i-")), "j.sqlite")), o, grader);
    await referenceStage(problems, teacher, new Journal(join(mkdtempSync(join(tmpdir(), "pcot-ref-i-")), "j.sqlite")), { ...o, instruction: "Answer only with \\boxed{N}." }, grader);
    expect(seen).toEqual([`What is 1 + 1?\n\n${REFERENCE_INSTRUCTION}`, "What is 1 + 1?\n\nAnswer only with \\boxed{N}."]);
    expect(referenceMessages({ prompt: "What is 1 + 1?" }, "Box it.", [{ user: "What is 2 + 3?", assistant: "\\boxed{5}" }])).toEqual([
      { role: "user", content: "What is 2 + 3?\n\nBox it." },
      { role: "assistant", content: "\\boxed{5}" },
      { role: "user", content: "What is 1 + 1?\n\nBox it." },
    ]);
    expect(REFERENCE_INSTRUCTION).toBe("Please reason step by step, and put your final answer within \\boxed{}.");
  });
});

describe("promptcot references (real worker)", () => {
  it("refuses a bad -n or --min-agreement before starting a teacher (exit 2, names the flag)", () => {
    const dir = mkdtempSync(join(tmpdir(), "pcot-ref-bad-"));
    const input = join(dir, "p.jsonl");
    writeFileSync(input, '{"prompt":"1+1?"}\n');
    const run = (...extra: string[]) =>
      spawnSync("node", ["bin/promptcot.mjs", "references", "--in", input, "--out", join(dir, "o.jsonl"), "--teacher", "tiny-random-llama", ...extra], { encoding: "utf8" });
    const zero = run("-n", "0");
    expect([zero.status, zero.stderr]).toEqual([2, expect.stringMatching(/-n must be a positive integer \(got 0\)/)]);
    const share = run("--min-agreement", "1.5");
    expect([share.status, share.stderr]).toEqual([2, expect.stringMatching(/--min-agreement must be in \[0, 1\] \(got 1.5\)/)]);
    const engine = run("--engine", "sglang");
    expect([engine.status, engine.stderr]).toEqual([2, expect.stringMatching(/--engine must be one of worker, vllm \(got 'sglang'\)/)]);
    const dtype = run("--engine", "vllm", "--dtype", "fp8");
    expect([dtype.status, dtype.stderr]).toEqual([2, expect.stringMatching(/--dtype must be one of float32, bfloat16, auto \(got 'fp8'\)/)]);
  });

  it("SIGKILLed after some samples are journaled, rerun finishes without redoing them", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pcot-ref-cli-"));
    const input = join(dir, "problems.jsonl");
    const n = 3;
    const problems = Array.from({ length: 8 }, (_, i) => ({ id: `q${i}`, prompt: `What is ${i} + ${i}?` }));
    writeFileSync(input, problems.map((p) => JSON.stringify(p)).join("\n"));
    const runDir = join(dir, "run");
    const args = ["bin/promptcot.mjs", "references", "--in", input, "--out", join(dir, "out.jsonl"), "--teacher", "tiny-random-llama",
      "-n", String(n), "--run-dir", runDir, "--max-tokens", "16", "--seed", "5"];
    const child = spawn("node", args, { stdio: "ignore" });
    const exited = new Promise((r) => child.on("exit", r));
    await waitFor(() => countUnits(runDir, SAMPLE_STAGE) >= 6, 240_000, "six journaled teacher samples");
    child.kill("SIGKILL");
    await exited;
    const before = rows(runDir);
    expect(before.size).toBeGreaterThanOrEqual(6);
    expect(before.size, "the first run finished before the kill: the test proves nothing").toBeLessThan(problems.length * n);

    const r = spawnSync("node", args, { encoding: "utf8", timeout: 240_000 });
    expect(r.status, r.stderr).toBe(0);
    const after = rows(runDir);
    expect(after.size).toBe(problems.length * n);
    for (const [id, row] of before) expect(after.get(id), `${id} was redone`).toEqual(row); // same text, same done_at
    const asked = askedAfterKill(runDir);
    expect(asked.filter((id) => before.has(id))).toEqual([]);
    expect(new Set(asked).size + before.size).toBe(problems.length * n);
    expect(countUnits(runDir, "ref/vote")).toBe(problems.length);
    expect(r.stderr).toMatch(new RegExp(`${problems.length} problems × ${n} teacher samples \\(\\d+ generated now, ${before.size} from the journal\\)`));
    readFileSync(join(dir, "out.jsonl"), "utf8"); // written (random text rarely boxes anything, so usually empty)
  }, 300_000);
});

function rows(runDir: string): Map<string, string> {
  const db = new Database(join(runDir, "journal.sqlite"), { readonly: true });
  try {
    const all = db.prepare("SELECT id, result, done_at FROM units WHERE stage = ?").all(SAMPLE_STAGE) as { id: string; result: string; done_at: string }[];
    return new Map(all.map((x) => [x.id, `${x.done_at} ${x.result}`]));
  } finally {
    db.close();
  }
}

/** Sample units the teacher was asked for by the last run (the first run's requests come first). */
function askedAfterKill(runDir: string): string[] {
  const db = new Database(join(runDir, "journal.sqlite"), { readonly: true });
  try {
    const ev = db.prepare("SELECT data FROM events WHERE kind = 'ref_generate' ORDER BY seq").all() as { data: string }[];
    expect(ev.length).toBe(2);
    return (JSON.parse(ev.at(-1)!.data) as { samples: string[] }).samples;
  } finally {
    db.close();
  }
}
