// A run directory outlives the promptcot that started it: a newer schema's keys do not move the default run
// directory or refuse the resume, while a changed value still refuses, naming the key and both values.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { describe, expect, it } from "vitest";
import { loadExperiment } from "../src/config/load.js";
import { ConfigError } from "../src/config/errors.js";
import { checkSameConfig, configDiff, defaultRunDir, resolvedYaml } from "../src/experiment/run-dir.js";

const EXP = "experiments/quickstart.yaml";

/** The stored config as an older promptcot would have written it: without `engine` and `train.grpo.clip_high`. */
function olderStored(yaml: string): string {
  const doc = parse(yaml) as { engine?: unknown; train: { grpo: { clip_high?: number } } };
  delete doc.engine;
  delete doc.train.grpo.clip_high;
  return stringify(doc, { lineWidth: 0 });
}

describe("run directory across promptcot versions", () => {
  it("keys a newer schema added are accepted and listed; changed and removed keys are refused by name", () => {
    const { config } = loadExperiment(EXP);
    const stored = olderStored(resolvedYaml(config));
    expect(configDiff(stored, config)).toEqual({ changed: [], added: ["train.grpo.clip_high", "engine"] });

    const lr = loadExperiment(EXP, ["train.learning_rate=1e-5"]).config;
    expect(configDiff(stored, lr).changed).toEqual(["train.learning_rate: 0.00003 in the run, 0.00001 now"]);

    const dir = mkdtempSync(join(tmpdir(), "pcot-rundir-"));
    writeFileSync(join(dir, "config.resolved.yaml"), stored);
    expect(checkSameConfig(dir, config)).toEqual(["train.grpo.clip_high", "engine"]);
    expect(() => checkSameConfig(dir, lr)).toThrow(ConfigError);
    expect(() => checkSameConfig(dir, lr)).toThrow(/train\.learning_rate: 0\.00003 in the run, 0\.00001 now/);

    // a key the run had that this version no longer knows is a change, not silently dropped
    const withGone = stringify({ ...(parse(readFileSync(join(dir, "config.resolved.yaml"), "utf8")) as object), retired_knob: 3 });
    expect(configDiff(withGone, config).changed).toEqual(["retired_knob: 3 in the run, not a key any more"]);
  });

  it("the default run directory hashes what the user wrote, so defaults a newer schema adds do not move it", () => {
    const root = mkdtempSync(join(tmpdir(), "pcot-runs-"));
    const a = loadExperiment(EXP);
    const same = loadExperiment(EXP);
    const other = loadExperiment(EXP, ["seed=8"]);
    const dir = defaultRunDir(a.config, a.explicit, root);
    expect(defaultRunDir(same.config, same.explicit, root)).toBe(dir);
    expect(defaultRunDir(other.config, other.explicit, root)).not.toBe(dir);
    // the same written config with one more resolved default (a newer schema) lands in the same directory
    const newer = { ...a.config, train: { ...a.config.train, new_default_knob: true } } as typeof a.config;
    expect(resolvedYaml(newer)).not.toBe(resolvedYaml(a.config));
    expect(defaultRunDir(newer, a.explicit, root)).toBe(dir);
    // the order of keys in the file does not matter
    const reordered = Object.fromEntries(Object.entries(a.explicit).reverse());
    expect(defaultRunDir(a.config, reordered, root)).toBe(dir);
  });
});
