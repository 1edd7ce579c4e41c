// `promptcot compare` as a user runs it: results files from any tool, a run directory's held-out evals,
// --json fields, refused and allowed unpaired problems, bad rows named by file:line, and a report that
// is one self-contained HTML file.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Journal } from "../src/experiment/journal.js";

const cli = (...args: string[]) => {
  const r = spawnSync("node", ["bin/promptcot.mjs", "compare", ...args], { encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

/** 40 problems × 4 samples; B solves `gain` more of each problem's samples on the first half of problems. */
function results(dir: string, name: string, gain: number, skip?: string): string {
  const rows: string[] = [];
  for (let p = 0; p < 40; p++) {
    if (`q${p}` === skip) continue;
    for (let s = 0; s < 4; s++) {
      const correct = s < (p % 3) + (p < 20 ? gain : 0);
      rows.push(JSON.stringify({ benchmark: "toy", problem_id: `q${p}`, sample_idx: s, correct, response_tokens: 50 + s, finish_reason: "stop", checkpoint: name }));
    }
  }
  const path = join(dir, `${name}.jsonl`);
  writeFileSync(path, `${rows.join("\n")}\n`);
  return path;
}

describe("promptcot compare", () => {
  it("prints the per-benchmark fields as JSON and writes markdown and self-contained HTML", () => {
    const d = mkdtempSync(join(tmpdir(), "cmp-"));
    const r = cli("--results", results(d, "base", 0), results(d, "tuned", 1), "--json", "--out", join(d, "rep"));
    expect(r.code, r.err).toBe(0);
    const [c] = JSON.parse(r.out) as Record<string, number | string>[];
    expect(c).toMatchObject({ benchmark: "toy", a: "base", b: "tuned", problems: 40 });
    expect(c!.diff as number).toBeCloseTo(0.125, 12); // 20 of 40 problems gain one of four samples
    expect(c!.p_value as number).toBeLessThan(0.05);
    expect(c!.ci_low as number).toBeGreaterThan(0);
    expect((c!.a_mean as number) + (c!.diff as number)).toBeCloseTo(c!.b_mean as number, 12);
    const html = readFileSync(join(d, "rep", "compare.html"), "utf8");
    expect(html).toContain("<svg");
    expect(html).not.toMatch(/(src|href)=["']?(https?:)?\/\//);
    expect(readFileSync(join(d, "rep", "compare.md"), "utf8")).toMatch(/\| toy \| base \| tuned \| 40 \|.*tuned better/);
  });

  it("refuses a problem one side lacks (exit 2, named); --allow-unpaired compares the rest and says so", () => {
    const d = mkdtempSync(join(tmpdir(), "cmp-"));
    const [a, b] = [results(d, "base", 0), results(d, "tuned", 1, "q7")];
    const refused = cli("--results", a, b, "--out", join(d, "rep"));
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/toy: problems present on one side only \(only in base: q7\)/);
    const allowed = cli("--results", a, b, "--allow-unpaired", "--out", join(d, "rep"));
    expect(allowed.code, allowed.err).toBe(0);
    expect(allowed.out).toMatch(/compared on the 39 shared problems; left out: only in A q7/);
  });

  it("names the file and line of a bad row", () => {
    const d = mkdtempSync(join(tmpdir(), "cmp-"));
    const bad = join(d, "bad.jsonl");
    writeFileSync(bad, `{"benchmark":"toy","problem_id":"q0","sample_idx":0,"correct":true}\n{"benchmark":"toy","problem_id":"q1","sample_idx":0,"correct":"yes"}\n`);
    const r = cli("--results", bad, results(d, "b", 0));
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${bad}:2: 'correct' must be true/false`);
  });

  it("reads a run directory's held-out evals (RUN#N = after iteration N, RUN = the last)", () => {
    const run = mkdtempSync(join(tmpdir(), "cmp-run-"));
    writeFileSync(join(run, "run.json"), "{}");
    const j = new Journal(join(run, "journal.sqlite"));
    for (const it of [0, 1]) {
      for (const p of ["h0000", "h0001"]) {
        for (const s of [0, 1]) {
          const verdict = it === 1 && p === "h0000" ? "correct" : "incorrect";
          j.record([{ id: `it00${it}/eval/${p}/00${s}`, stage: "eval", iteration: it, result: { prompt_id: p, sample: s, verdict, extracted: "1", finish_reason: "stop" } }]);
        }
      }
    }
    j.close();
    const r = cli(`${run}#0`, run, "--json", "--out", join(run, "rep"));
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)[0]).toMatchObject({ benchmark: "heldout", a: `${run}#0`, b: `${run}#1`, a_mean: 0, b_mean: 0.5, gained: ["h0000"] });
    const missing = cli(`${run}#5`, run);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/no held-out eval after iteration 5 \(evals at iterations: 0, 1\)/);
  });
});
