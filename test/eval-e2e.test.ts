// End to end on real workers: `promptcot eval` on tiny-random-llama against a 3-problem fixture with k=2,
// the controller SIGKILLed mid-eval, the same command resumes generating only the missing samples and
// ends equal to an uninterrupted eval; `promptcot compare` of the two prints the JSON fields.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { countUnits, processesOfRun, units, waitFor } from "./helpers/run-harness.js";
import { spawn } from "node:child_process";

const STAGE = "bench:eval-bench-3";
const args = (out: string) => ["bin/promptcot.mjs", "eval", "tiny-random-llama", "--bench", "test/fixtures/eval-bench-3.jsonl", "-k", "2",
  "--max-tokens", "48", "--prompts-per-request", "1", "--threads", "1", "--out", out];

function evalRun(out: string, label: string) {
  const child = spawn("node", [...args(out), "--label", label], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CI: "true" } });
  let log = "";
  child.stdout!.on("data", (b) => (log += b));
  child.stderr!.on("data", (b) => (log += b));
  const done = new Promise<{ code: number | null; log: string }>((r) => child.on("exit", (code) => r({ code, log })));
  return { child, done };
}

const rowsOf = (out: string) => readFileSync(join(out, "results.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);

describe("promptcot eval + compare (real workers)", () => {
  it("resumes after a controller SIGKILL without redoing journaled samples; compare prints the fields", async () => {
    const root = mkdtempSync(join(tmpdir(), "pcot-eval-"));
    const [a, ref] = [join(root, "a"), join(root, "ref")];

    const first = evalRun(a, "ckpt-a");
    await waitFor(() => countUnits(a, STAGE) >= 2, 90_000, "two journaled eval samples");
    first.child.kill("SIGKILL");
    await first.done;
    const before = units(a, STAGE);
    expect(before.size, "the kill must land mid-eval").toBeLessThan(6);
    await waitFor(() => processesOfRun(a).length === 0, 15_000, "the workers to die with their controller");

    const second = await evalRun(a, "ckpt-a").done;
    expect(second.code, second.log).toBe(0);
    const missing = 6 - before.size;
    expect(second.log).toContain(`${missing} sample(s) to generate`);
    expect(second.log).toMatch(new RegExp(`eval eval-bench-3: 0/${missing} `));
    const after = units(a, STAGE);
    expect(after.size).toBe(6);
    for (const [id, result] of before) expect(after.get(id), id).toBe(result);

    const uninterrupted = await evalRun(ref, "ckpt-ref").done;
    expect(uninterrupted.code, uninterrupted.log).toBe(0);
    const strip = (rs: Record<string, unknown>[]) => rs.map(({ checkpoint: _c, ...r }) => r);
    expect(strip(rowsOf(a))).toEqual(strip(rowsOf(ref)));
    expect(Object.keys(rowsOf(a)[0]!)).toEqual(expect.arrayContaining(["benchmark", "problem_id", "sample_idx", "correct", "extracted", "response_tokens", "finish_reason", "checkpoint"]));

    const json = JSON.parse(execFileSync("node", ["bin/promptcot.mjs", "compare", a, ref, "--json", "--out", join(root, "cmp")], { encoding: "utf8" })) as Record<string, unknown>[];
    expect(json).toHaveLength(1);
    expect(json[0]).toMatchObject({ benchmark: "eval-bench-3", a: "ckpt-a", b: "ckpt-ref", problems: 3, diff: 0, ci_low: 0, ci_high: 0, p_value: 1 });
    for (const k of ["a_mean", "b_mean", "diff", "ci_low", "ci_high", "p_value"]) expect(typeof json[0]![k], k).toBe("number");
    expect(readFileSync(join(root, "cmp", "compare.html"), "utf8")).toContain("<svg");
  }, 240_000);
});
