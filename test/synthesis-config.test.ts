// The synthesis experiments validate and dry-run; `task` defaults to self-play; bad synthesis config is an
// error that names the key.
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../src/config/errors.js";
import { loadExperiment } from "../src/config/load.js";
import { generatedSeeds } from "../src/synthesis/seeds.js";

describe("synthesis config", () => {
  it("the paper config: Qwen2.5-32B-Base for both roles, K = 8, the paper's learning rates and batch sizes", () => {
    const { config: c } = loadExperiment("experiments/synthesis-paper.yaml");
    expect(c.task).toBe("synthesis");
    expect(c.model.source).toMatch(/Qwen2\.5-32B/);
    expect(c.synthesis.rationale_model.source ?? c.model.source).toBe(c.synthesis.prompt_model.source ?? c.model.source);
    expect(c.synthesis.em.k).toBe(8);
    expect(c.synthesis.warm_start).toMatchObject({ learning_rate: 2e-5, batch_size: 16, epochs: 2 });
    expect(c.synthesis.em.train).toMatchObject({ learning_rate: 2e-6, batch_size: 16 });
  });

  it("the CPU config is small: ~24 seeds, K = 4, 2 EM iterations, 32-64 generations", () => {
    const { config: c } = loadExperiment("experiments/synthesis-cpu.yaml");
    expect(c.synthesis.seeds).toMatchObject({ kind: "generated", count: 24 });
    expect(c.synthesis.em.k).toBe(4);
    expect(c.synthesis.em.iterations).toBe(3);
    const n = c.synthesis.generate.count * c.synthesis.generate.samples_per_set;
    expect(n).toBeGreaterThanOrEqual(32);
    expect(n).toBeLessThanOrEqual(64);
  });

  it("the CPU config agrees with its seeds and gives EM a fair share (issue 19)", () => {
    const { config: c } = loadExperiment("experiments/synthesis-cpu.yaml");
    const s = c.synthesis;
    // p is trained on the seeds' concept sets; asking it for sets of another size makes it write nonsense
    for (const seed of generatedSeeds(c.seed, s.seeds.count)) expect(seed.concepts!.length, seed.id).toBe(s.concepts.size);
    // EM's SFT (learning rate × optimizer steps, summed over iterations) at least matches the warm start's
    const steps = (t: { batch_size: number; epochs: number }) => Math.ceil(s.seeds.count / t.batch_size) * t.epochs;
    const warm = s.warm_start.learning_rate * steps(s.warm_start);
    expect(s.em.iterations * s.em.train.learning_rate * steps(s.em.train)).toBeGreaterThanOrEqual(warm);
    // E-step candidates get twice the cold-start rationale's token budget, so a z as long as the first is not cut
    expect(s.em.sampling.max_tokens).toBeGreaterThanOrEqual(2 * s.annotator.sampling.max_tokens);
  });

  it.each(["experiments/synthesis-paper.yaml", "experiments/synthesis-cpu.yaml"])("%s dry-runs: prints the plan, starts nothing", (file) => {
    const r = spawnSync("node", ["bin/promptcot.mjs", "run", file, "--dry-run", "--run-dir", join(mkdtempSync(join(tmpdir(), "pcot-dry-")), "run")], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("task: synthesis");
    expect(r.stdout).toMatch(/EM 2: E-step \d rationales per problem/);
    expect(r.stdout).toContain("nothing started");
  });

  it("task defaults to selfplay; a jsonl seed source without a path is an error naming the key", () => {
    expect(loadExperiment("experiments/quickstart.yaml").config.task).toBe("selfplay");
    const dir = mkdtempSync(join(tmpdir(), "pcot-syncfg-"));
    const file = join(dir, "bad.yaml");
    writeFileSync(file, "name: bad\ntask: synthesis\nsynthesis:\n  seeds: { kind: jsonl }\n");
    let err: unknown;
    try {
      loadExperiment(file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).format()).toContain("synthesis.seeds.path");
  });

  it("a fallback_rationale that would copy the problem ({problem}) is an error naming the key", () => {
    const dir = mkdtempSync(join(tmpdir(), "pcot-syncfg-"));
    const file = join(dir, "bad.yaml");
    writeFileSync(file, 'name: bad\ntask: synthesis\nsynthesis:\n  templates: { fallback_rationale: "Use {concepts_inline}: {problem}" }\n');
    expect(() => loadExperiment(file)).toThrow(ConfigError);
    try {
      loadExperiment(file);
    } catch (e) {
      expect((e as ConfigError).format()).toContain("synthesis.templates.fallback_rationale");
    }
  });
});
