import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../src/config/errors.js";
import { applyOverrides, loadExperiment } from "../src/config/load.js";
import { experimentJsonSchema } from "../src/cli/schema.js";

const tmp = () => mkdtempSync(join(tmpdir(), "pcot-cfg-"));
function write(dir: string, name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}
function expectConfigError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("config loading", () => {
  it("loads the quickstart with defaults and includes merged", () => {
    const { config, files } = loadExperiment("experiments/quickstart.yaml");
    expect(config.name).toBe("quickstart");
    expect(config.model.source).toBe("smollm2-135m-instruct"); // from the include
    expect(config.train.beta).toBe(0.1);
    expect(files).toHaveLength(2);
  });

  it("names file, line and key path of an unknown key", () => {
    const d = tmp();
    const f = write(d, "x.yaml", "name: x\ntrain:\n  beta: 0.1\n  learning_rat: 0.1\n");
    const e = expectConfigError(() => loadExperiment(f));
    expect(e.file).toBe(f);
    expect(e.line).toBe(4);
    expect(e.keyPath).toBe("train.learning_rat");
    expect(e.format()).toContain("unknown key 'learning_rat'");
  });

  it("names the line of a wrong type", () => {
    const d = tmp();
    const f = write(d, "x.yaml", "name: x\nrollout:\n  samples_per_prompt: four\n  temperature: 1\n  max_tokens: 8\n");
    const e = expectConfigError(() => loadExperiment(f));
    expect([e.line, e.keyPath]).toEqual([3, "rollout.samples_per_prompt"]);
  });

  it("rejects a bad value with its location", () => {
    const d = tmp();
    const f = write(d, "x.yaml", "name: x\npairs:\n  max_pass_rate: 1.5\n");
    const e = expectConfigError(() => loadExperiment(f));
    expect([e.line, e.keyPath]).toEqual([3, "pairs.max_pass_rate"]);
  });

  it("blames the included file that set a bad key", () => {
    const d = tmp();
    const inc = write(d, "model.yaml", "model:\n  source: x\n  dtype: float64\n");
    const f = write(d, "x.yaml", `include: [model.yaml]\nname: x\n`);
    const e = expectConfigError(() => loadExperiment(f));
    expect([e.file, e.line, e.keyPath]).toEqual([inc, 3, "model.dtype"]);
  });

  it("names a missing file and an invalid YAML line", () => {
    expect(expectConfigError(() => loadExperiment("/nonexistent/exp.yaml")).format()).toContain("/nonexistent/exp.yaml: file not found");
    const d = tmp();
    const f = write(d, "bad.yaml", "name: x\ntrain: [1, 2\n");
    const e = expectConfigError(() => loadExperiment(f));
    expect(e.message).toContain("invalid YAML");
    expect(e.line).toBeGreaterThanOrEqual(2);
  });

  it("applies --set overrides with YAML-typed values and blames --set for bad ones", () => {
    const { config } = loadExperiment("experiments/quickstart.yaml", ["train.beta=0.5", "iterations=3", "model.source=tiny-random-llama"]);
    expect([config.train.beta, config.iterations, config.model.source]).toEqual([0.5, 3, "tiny-random-llama"]);
    const e = expectConfigError(() => loadExperiment("experiments/quickstart.yaml", ["train.beta=-1"]));
    expect([e.file, e.keyPath]).toEqual(["--set", "train.beta"]);
    expect(() => applyOverrides({}, ["novalue"])).toThrow(/key.path=value/);
  });

  it("exports a JSON schema that matches the committed one", () => {
    const schema = JSON.parse(experimentJsonSchema());
    expect(schema.properties.train.properties.beta.type).toBe("number");
    expect(schema.additionalProperties).toBe(false);
    expect(experimentJsonSchema()).toBe(
      existsSync("schema/experiment.schema.json") ? readFileSync("schema/experiment.schema.json", "utf8") : "missing: run npx promptcot schema",
    );
  });
});

describe("CLI behaviour on bad config", () => {
  it("exits 2 with file:line and writes nothing", () => {
    const d = tmp();
    const f = write(d, "x.yaml", "name: x\nworkers:\n  count: 0\n");
    const r = spawnSync("node", ["bin/promptcot.mjs", "run", f, "--run-dir", join(d, "run")], { encoding: "utf8" });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${f}:3 at 'workers.count'`);
    expect(readdirSync(d)).toEqual(["x.yaml"]);
  });

  it("--dry-run prints the resolved config and plan and starts nothing", () => {
    const d = tmp();
    const out = execFileSync("node", ["bin/promptcot.mjs", "run", "experiments/quickstart.yaml", "--dry-run", "--run-dir", join(d, "r")], { encoding: "utf8" });
    expect(out).toContain("# resolved config");
    expect(out).toContain("iteration 3: rollout 32 prompts");
    expect(existsSync(join(d, "r"))).toBe(false);
  });
});
