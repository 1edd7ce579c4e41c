// `promptcot grade math --in FILE --out FILE`, through its exported function and its commander registration.
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { gradeMathFile, registerGradeMath } from "../src/verify/math/index.js";

function fixture(lines: string[]): { dir: string; inPath: string; outPath: string } {
  const dir = mkdtempSync(join(tmpdir(), "grade-math-"));
  const inPath = join(dir, "in.jsonl");
  writeFileSync(inPath, `${lines.join("\n")}\n`);
  return { dir, inPath, outPath: join(dir, "out.jsonl") };
}

const ROWS = [
  JSON.stringify({ id: 0, completion: "<think>...</think> so \\boxed{70}", answer: "#### 70", source: "aime" }),
  JSON.stringify({ id: 1, completion: "The final answer is $\\frac{1}{2}$.", answer: "0.5" }),
  "{not json",
  JSON.stringify({ id: 3, answer: "5" }),
  JSON.stringify({ id: 4, completion: 7, answer: "7" }),
  JSON.stringify({ id: 5, completion: "\\boxed{3}", answer: { v: 3 } }),
  JSON.stringify({ id: 6, completion: "maybe 3 or 5 or 7", answer: "5", verdict: "stale" }),
  JSON.stringify({ id: 7, completion: "\\boxed{\\sec^2 y}", answer: "\\tan^2 y+1" }),
  JSON.stringify({ id: 8, completion: "\\boxed{72}", answer: 72 }),
  "[1, 2]",
  JSON.stringify({ id: 10, completion: "\\boxed{4}", answer: "5" }),
];

describe("grade math file", () => {
  it("writes every input row plus verdict and extracted, in order, and never dies on a bad row", async () => {
    const f = fixture(ROWS);
    const logs: string[] = [];
    const s = await gradeMathFile({ inPath: f.inPath, outPath: f.outPath, progress: false, workers: 1, log: (l) => logs.push(l) });
    const out = readFileSync(f.outPath, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(out).toHaveLength(ROWS.length);
    expect(out.map((r) => r.verdict)).toEqual([
      "correct", "correct", "error", "error", "error", "error", "no_answer", "correct", "correct", "error", "incorrect",
    ]);
    expect(out[0]).toEqual({ id: 0, completion: "<think>...</think> so \\boxed{70}", answer: "#### 70", source: "aime", verdict: "correct", extracted: "70" });
    expect(out[2]).toMatchObject({ raw: "{not json", extracted: null });
    expect(out[2].reason).toMatch(/invalid JSON/);
    expect(out[3].reason).toMatch(/missing field: completion/);
    expect(out[4].reason).toMatch(/completion must be a string/);
    expect(out[5].reason).toMatch(/answer must be a string/);
    expect(out[6]).toMatchObject({ id: 6, verdict: "no_answer", extracted: null });
    expect(out[9]).toMatchObject({ raw: "[1, 2]", verdict: "error" });
    expect(s).toMatchObject({ rows: 11, correct: 4, incorrect: 1, no_answer: 1, error: 5, timeout: 0 });
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(/graded 11 rows .*4 correct.*1 incorrect.*1 no_answer.*0 timeout.*5 error/);
    expect(readdirSync(f.dir).sort()).toEqual(["in.jsonl", "out.jsonl"]); // no temp file left behind
  });

  it("honours a row's prompt_opens_think: reasoning that never closes the block is no_answer", async () => {
    const cut = "so it is \\boxed{70}, unless";
    const f = fixture([
      JSON.stringify({ id: "plain", completion: cut, answer: "70" }),
      JSON.stringify({ id: "cut", completion: cut, answer: "70", prompt_opens_think: true }),
      JSON.stringify({ id: "closed", completion: `${cut}</think> \\boxed{70}`, answer: "70", prompt_opens_think: true }),
      JSON.stringify({ id: "bad-flag", completion: cut, answer: "70", prompt_opens_think: 1 }),
    ]);
    await gradeMathFile({ inPath: f.inPath, outPath: f.outPath, progress: false, workers: 1, log: () => {} });
    const out = readFileSync(f.outPath, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(out.map((r) => [r.id, r.verdict])).toEqual([["plain", "correct"], ["cut", "no_answer"], ["closed", "correct"], ["bad-flag", "error"]]);
    expect(out[1].reason).toMatch(/prompt opened <think>/);
    expect(out[3].reason).toMatch(/prompt_opens_think/);
  });

  it("leaves no output (and no temp file) when the input cannot be read", async () => {
    const f = fixture([]);
    await expect(gradeMathFile({ inPath: join(f.dir, "missing.jsonl"), outPath: f.outPath, progress: false })).rejects.toThrow();
    expect(readdirSync(f.dir)).toEqual(["in.jsonl"]);
  });

  it("registers as `grade math --in --out` with plain progress lines off a TTY", async () => {
    const f = fixture(ROWS.slice(0, 2));
    const program = new Command().exitOverride();
    registerGradeMath(program.command("grade"));
    const written: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    const writeErr = process.stderr.write.bind(process.stderr);
    process.stdout.write = ((c: string) => (written.push(String(c)), true)) as typeof process.stdout.write;
    process.stderr.write = ((c: string) => (written.push(String(c)), true)) as typeof process.stderr.write;
    try {
      await program.parseAsync(["node", "promptcot", "grade", "math", "--in", f.inPath, "--out", f.outPath, "--workers", "1"]);
    } finally {
      process.stdout.write = write;
      process.stderr.write = writeErr;
    }
    expect(readFileSync(f.outPath, "utf8").trim().split("\n")).toHaveLength(2);
    expect(written.join("")).toMatch(/grade math: 2\/2/);
    expect(written.join("")).toMatch(/graded 2 rows/);
  });
});
