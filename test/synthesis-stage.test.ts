// Test-case synthesis through the real Generate RPC (tiny random model: replies are malformed, which the
// strict parser must drop; the wiring — one generation per problem per round — is what is checked here).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

describe("synth-tests command", () => {
  it("asks the worker once per problem per round and drops unparseable replies", () => {
    const d = mkdtempSync(join(tmpdir(), "pcot-synth-"));
    const input = join(d, "problems.jsonl");
    writeFileSync(input, ['{"id":"a","prompt":"Read n and print n+1."}', '{"id":"b","prompt":"Print the sum of two integers."}', '{"id":"c","prompt":"Echo the input."}'].join("\n"));
    const out = join(d, "out.jsonl");
    const r = spawnSync("node", ["bin/promptcot.mjs", "synth-tests", "--in", input, "--out", out, "--rounds", "2", "--model", "tiny-random-llama", "--max-tokens", "12"], {
      encoding: "utf8",
      timeout: 300_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain("3 problems × 2 rounds = 6 generations");
    expect(r.stderr).toMatch(/parsed 0, malformed 6/);
    expect(existsSync(out)).toBe(true);
    expect(readFileSync(out, "utf8")).toBe("");
  });

  it("rejects a bad input file with its line number", () => {
    const d = mkdtempSync(join(tmpdir(), "pcot-synth-"));
    const input = join(d, "bad.jsonl");
    writeFileSync(input, '{"prompt":"ok"}\n{"nope":1}\n');
    const r = spawnSync("node", ["bin/promptcot.mjs", "synth-tests", "--in", input, "--out", join(d, "o.jsonl")], { encoding: "utf8" });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`${input}:2: each row needs a string 'prompt'`);
  });
});
