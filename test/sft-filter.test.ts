import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../src/config/errors.js";
import { ExperimentSchema } from "../src/config/schema.js";
import { lengthGroupedBatches, readSftData, textFilter } from "../src/train/sft-regime.js";

describe("SFT trajectory filter (PromptCoT 2.0: a final answer or code block, a length cap)", () => {
  it("math keeps a completion with a non-empty boxed answer, drops the rest by reason", () => {
    expect(textFilter("2 + 3 = 5. The answer is \\boxed{5}.", "math")).toBeUndefined();
    expect(textFilter("so x = \\boxed{\\frac{1}{2}}", "math")).toBeUndefined();
    expect(textFilter("The answer is 5.", "math")).toBe("no_boxed_answer");
    expect(textFilter("The answer is \\boxed{}.", "math")).toBe("no_boxed_answer");
    expect(textFilter("  \n", "math")).toBe("empty_completion");
  });

  it("math: a box inside unfinished thinking is not a final answer", () => {
    expect(textFilter("<think>maybe \\boxed{4}", "math")).toBe("no_boxed_answer");
    expect(textFilter("<think>maybe 4</think>It is \\boxed{5}.", "math")).toBeUndefined();
  });

  it("code keeps a completion with a non-empty fenced block after the thinking", () => {
    expect(textFilter("Here:\n```python\nprint(int(input()) * 2)\n```\n", "code")).toBeUndefined();
    expect(textFilter("```\nx = 1\n```", "code")).toBeUndefined();
    expect(textFilter("print(1)", "code")).toBe("no_code_block");
    expect(textFilter("```python\n\n```", "code")).toBe("no_code_block");
    expect(textFilter("<think>```python\nprint(1)\n```", "code")).toBe("no_code_block");
  });
});

describe("SFT trajectories file", () => {
  const cfgFor = (path: string) => ExperimentSchema.parse({ name: "x", task: "sft", sft: { trajectories_path: path } });
  const file = (text: string) => {
    const d = mkdtempSync(join(tmpdir(), "sft-"));
    writeFileSync(join(d, "t.jsonl"), text);
    return d;
  };

  it("reads prompt/completion rows (system prompt first) and messages rows; ids are row positions", () => {
    const d = file('{"prompt":"q1","completion":"a1"}\n\n{"messages":[{"role":"user","content":"q2"},{"role":"assistant","content":"a2"}]}\n');
    const data = readSftData(cfgFor("t.jsonl"), d);
    expect(data.trajectories.map((t) => t.id)).toEqual(["r00000", "r00001"]);
    expect(data.trajectories[0]!.messages.map((m) => m.role)).toEqual(["system", "user"]);
    expect(data.trajectories[1]).toEqual({ id: "r00001", messages: [{ role: "user", content: "q2" }], completion: "a2" });
    expect(data.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("a bad row is a ConfigError naming file:line; a missing path names the key", () => {
    const d = file('{"prompt":"q1","completion":"a1"}\n{"prompt":"q2"}\n');
    expect(() => readSftData(cfgFor("t.jsonl"), d)).toThrow(ConfigError);
    try {
      readSftData(cfgFor("t.jsonl"), d);
    } catch (e) {
      expect((e as ConfigError).format()).toMatch(/t\.jsonl:2: neither prompt \+ completion/);
    }
    const d2 = file('{"messages":[{"role":"assistant","content":"a"}]}\n');
    expect(() => readSftData(cfgFor("t.jsonl"), d2)).toThrow(/end with the assistant's reply after at least one other turn/);
    expect(() => readSftData(ExperimentSchema.parse({ name: "x", task: "sft" }), d)).toThrow(/task sft needs a JSONL/);
  });
});

describe("experiments/sft-cpu.yaml", () => {
  it("--dry-run shows the SFT plan (filter, batches, schedule), not a rollout", () => {
    const r = spawnSync("node", ["bin/promptcot.mjs", "run", "experiments/sft-cpu.yaml", "--dry-run"], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/filter \(a \\boxed\{\} answer, ≤64 completion tokens\)/);
    expect(r.stdout).toMatch(/iteration 2: SFT 1 pass\(es\), length_grouped batches of 8 \(lr 0.00002, cosine, warm-up 2\) → checkpoint → sync → eval/);
    expect(r.stdout.split("# plan")[1]).not.toMatch(/rollout|pairs/);
  });
});

describe("length-grouped batching (the worker pads; grouping keeps the padding small)", () => {
  const ids = Array.from({ length: 64 }, (_, i) => `r${i}`);
  const len = (id: string) => 10 + ((Number(id.slice(1)) * 37) % 200);
  const padding = (batches: string[][]) => batches.reduce((s, b) => s + b.length * Math.max(...b.map(len)) - b.reduce((x, id) => x + len(id), 0), 0);

  it("uses every id exactly once, in batches of batch_size, deterministically per seed", () => {
    const b = lengthGroupedBatches(ids, len, 8, 5, 4);
    expect(b.flat().sort()).toEqual([...ids].sort());
    expect(b.every((x) => x.length === 8)).toBe(true);
    expect(lengthGroupedBatches(ids, len, 8, 5, 4)).toEqual(b);
    expect(lengthGroupedBatches(ids, len, 8, 6, 4)).not.toEqual(b);
  });

  it("pads far less than plain shuffled batches", () => {
    const grouped = padding(lengthGroupedBatches(ids, len, 8, 5, 8));
    const plain = padding(Array.from({ length: 8 }, (_, i) => ids.slice(i * 8, i * 8 + 8)));
    expect(grouped).toBeLessThan(plain / 4);
  });
});
