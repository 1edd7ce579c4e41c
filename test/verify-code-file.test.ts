// `promptcot grade code --in FILE --out FILE`: order kept, other fields untouched, bad rows become
// verdict "error" with a reason, output written to a temp file then renamed, summary at the end.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { Command } from "commander";
import { afterAll, describe, expect, it } from "vitest";
import { gradeCodeFile, registerGradeCode } from "../src/verify/code/index.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "promptcot-grade-code-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const TESTS = [
  { input: "2 3\n", output: "5\n" },
  { input: "4 4\n", output: "8\n" },
];
const GOOD = "a, b = map(int, input().split())\nprint(a + b)\n";

/** A stream that collects what is written to it (stands in for stderr, not a TTY). */
function sink(): Writable & { text: () => string; isTTY?: boolean } {
  const chunks: string[] = [];
  const w = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  }) as Writable & { text: () => string };
  w.text = () => chunks.join("");
  return w;
}

describe("gradeCodeFile", () => {
  it("grades every row in input order, keeps other fields, turns bad rows into errors", async () => {
    const rows: string[] = [
      JSON.stringify({ id: "ok-code", code: GOOD, tests: TESTS, source: "s1", nested: { keep: [1, 2] }, reason: "mine" }),
      JSON.stringify({ id: "ok-completion", completion: `<think>hmm</think>\n\`\`\`python\n${GOOD}\`\`\``, tests: TESTS }),
      JSON.stringify({ id: "slow-first", code: "import time\ntime.sleep(3)\n", tests: TESTS }),
      JSON.stringify({ id: "wa", code: "print(5)", tests: TESTS }),
      "{not json",
      "",
      JSON.stringify([1, 2, 3]),
      JSON.stringify({ id: "no-program", tests: TESTS }),
      JSON.stringify({ id: "no-tests", code: GOOD }),
      JSON.stringify({ id: "bad-tests", code: GOOD, tests: [{ input: 1, output: 2 }] }),
      JSON.stringify({ id: "code-not-string", code: ["print(1)"], tests: TESTS }),
      JSON.stringify({ id: "completion-not-string", completion: 7, tests: TESTS }),
      JSON.stringify({ id: "huge", completion: "z".repeat(3_000_000), tests: TESTS }),
      JSON.stringify({ id: "no-code", completion: "I think the answer is 5.", tests: TESTS }),
      JSON.stringify({ id: "re", code: "raise SystemExit(3)", tests: TESTS, verdict: "stale", stderr: "stale" }),
      "   ",
    ];
    const inPath = path.join(dir, "in.jsonl");
    const outPath = path.join(dir, "out.jsonl");
    fs.writeFileSync(inPath, rows.join("\n") + "\n");
    const err = sink();
    const summary = await gradeCodeFile({
      inPath,
      outPath,
      progress: true,
      out: err as unknown as NodeJS.WriteStream,
      grader: { concurrency: 2, limits: { timeLimitMs: 1000 } },
    });
    const out = fs.readFileSync(outPath, "utf8").trimEnd().split("\n").map((l) => JSON.parse(l));
    expect(out.map((r) => r.id ?? `line ${r.line}`)).toEqual([
      "ok-code",
      "ok-completion",
      "slow-first",
      "wa",
      "line 5",
      "line 7",
      "no-program",
      "no-tests",
      "bad-tests",
      "code-not-string",
      "completion-not-string",
      "huge",
      "no-code",
      "re",
    ]);
    const by = Object.fromEntries(out.map((r) => [r.id ?? `line ${r.line}`, r]));
    expect(by["ok-code"]).toEqual({
      id: "ok-code",
      code: GOOD,
      tests: TESTS,
      source: "s1",
      nested: { keep: [1, 2] },
      reason: "mine",
      verdict: "AC",
      failed_test: null,
      stderr: "",
    });
    expect(by["ok-completion"]!.verdict).toBe("AC");
    expect(by["slow-first"]).toMatchObject({ verdict: "TLE", failed_test: 0 });
    expect(by["wa"]).toMatchObject({ verdict: "WA", failed_test: 1 });
    expect(by["re"]).toMatchObject({ verdict: "RE", failed_test: 0, stderr: "" });
    expect(by["no-code"]).toMatchObject({ verdict: "no_code", failed_test: null });
    expect(by["huge"]!.verdict).toBe("no_code");
    for (const id of ["line 5", "line 7", "no-program", "no-tests", "bad-tests", "code-not-string", "completion-not-string"]) {
      expect(by[id], id).toMatchObject({ verdict: "error", failed_test: null, stderr: "" });
      expect(typeof by[id]!.reason, id).toBe("string");
    }
    expect(by["line 5"]!.reason).toMatch(/invalid JSON/);
    expect(by["no-tests"]!.reason).toMatch(/tests/);
    expect(summary.rows).toBe(14);
    expect(summary.counts).toMatchObject({ AC: 2, TLE: 1, WA: 1, RE: 1, no_code: 2, error: 7 });
    // Not a TTY: plain progress lines, and the summary line last.
    const lines = err.text().trimEnd().split("\n");
    expect(lines[0]).toMatch(/^grade code: 0\/14/);
    expect(lines.at(-1)).toBe(summary.line);
    expect(summary.line).toMatch(/^graded 14 row\(s\) in [\d.]+s: AC 2, WA 1, TLE 1, RE 1, no_code 2, error 7 \(AC 14\.3%\)$/);
    // Temp file renamed away.
    expect(fs.readdirSync(dir).filter((f) => f.includes(".tmp-"))).toEqual([]);
  });

  it("honours a row's prompt_opens_think: a completion that never closes the block is no_code", async () => {
    const draft = `\`\`\`python\n${GOOD}\`\`\`\nchecking`;
    const rows = [
      JSON.stringify({ id: "plain", completion: draft, tests: TESTS }),
      JSON.stringify({ id: "cut", completion: draft, tests: TESTS, prompt_opens_think: true }),
      JSON.stringify({ id: "closed", completion: `${draft}</think>\n\`\`\`python\n${GOOD}\`\`\``, tests: TESTS, prompt_opens_think: true }),
      JSON.stringify({ id: "bad-flag", completion: draft, tests: TESTS, prompt_opens_think: "yes" }),
    ];
    const inPath = path.join(dir, "think.jsonl");
    const outPath = path.join(dir, "think-out.jsonl");
    fs.writeFileSync(inPath, rows.join("\n") + "\n");
    await gradeCodeFile({ inPath, outPath, progress: false, out: sink() as unknown as NodeJS.WriteStream, grader: { concurrency: 1 } });
    const out = fs.readFileSync(outPath, "utf8").trimEnd().split("\n").map((l) => JSON.parse(l));
    expect(out.map((r) => [r.id, r.verdict])).toEqual([["plain", "AC"], ["cut", "no_code"], ["closed", "AC"], ["bad-flag", "error"]]);
    expect(out[3].reason).toMatch(/prompt_opens_think/);
  });

  it("leaves no output and no temp file when the input cannot be read", async () => {
    const outPath = path.join(dir, "never.jsonl");
    await expect(gradeCodeFile({ inPath: path.join(dir, "missing.jsonl"), outPath, progress: false })).rejects.toThrow();
    expect(fs.existsSync(outPath)).toBe(false);
    expect(fs.readdirSync(dir).filter((f) => f.includes(".tmp-"))).toEqual([]);
  });

  it("creates the output directory, and fails cleanly when the output cannot be written", async () => {
    const inPath = path.join(dir, "one.jsonl");
    fs.writeFileSync(inPath, JSON.stringify({ code: GOOD, tests: TESTS }) + "\n");
    const nested = path.join(dir, "a", "b", "out.jsonl");
    await gradeCodeFile({ inPath, outPath: nested, progress: false, out: sink() as unknown as NodeJS.WriteStream });
    expect(JSON.parse(fs.readFileSync(nested, "utf8")).verdict).toBe("AC");
    const isDir = path.join(dir, "a");
    await expect(gradeCodeFile({ inPath, outPath: isDir, progress: false, out: sink() as unknown as NodeJS.WriteStream })).rejects.toThrow();
    expect(fs.readdirSync(dir).filter((f) => f.includes(".tmp-"))).toEqual([]);
  });

  it("draws a redrawn bar on a TTY", async () => {
    const inPath = path.join(dir, "tty.jsonl");
    fs.writeFileSync(inPath, [GOOD, "print(1)"].map((code) => JSON.stringify({ code, tests: TESTS })).join("\n"));
    const tty = sink();
    tty.isTTY = true;
    const saved = process.env.CI;
    delete process.env.CI;
    try {
      await gradeCodeFile({ inPath, outPath: path.join(dir, "tty.out.jsonl"), out: tty as unknown as NodeJS.WriteStream });
    } finally {
      if (saved !== undefined) process.env.CI = saved;
    }
    expect(tty.text()).toMatch(/\rgrade code \[#+\.*\] 2\/2/);
    expect(tty.text().trimEnd().split("\n").at(-1)).toMatch(/^graded 2 row\(s\).*AC 1, WA 1/);
  });

  it("handles an empty file", async () => {
    const inPath = path.join(dir, "empty.jsonl");
    const outPath = path.join(dir, "empty.out.jsonl");
    fs.writeFileSync(inPath, "");
    const s = await gradeCodeFile({ inPath, outPath, progress: false, out: sink() as unknown as NodeJS.WriteStream });
    expect(s.rows).toBe(0);
    expect(fs.readFileSync(outPath, "utf8")).toBe("");
  });

  it("is reachable as `grade code` on a commander program", async () => {
    const inPath = path.join(dir, "cli.jsonl");
    const outPath = path.join(dir, "cli.out.jsonl");
    fs.writeFileSync(inPath, JSON.stringify({ code: GOOD, tests: TESTS }) + "\n");
    const program = new Command().exitOverride();
    registerGradeCode(program.command("grade"));
    const spy = process.stderr.write;
    process.stderr.write = (() => true) as typeof process.stderr.write;
    try {
      await program.parseAsync(["node", "promptcot", "grade", "code", "--in", inPath, "--out", outPath, "--no-progress", "--concurrency", "1", "--float", "decimal"]);
    } finally {
      process.stderr.write = spy;
    }
    expect(JSON.parse(fs.readFileSync(outPath, "utf8")).verdict).toBe("AC");
    const strict = new Command().exitOverride().configureOutput({ writeErr: () => {} });
    registerGradeCode(strict.command("grade"));
    await expect(strict.parseAsync(["node", "x", "grade", "code", "--in", "a", "--out", "b", "--float", "fuzzy"])).rejects.toThrow(/float/);
    await expect(strict.parseAsync(["node", "x", "grade", "code", "--in", "a"])).rejects.toThrow(/--out/);
  });
});
