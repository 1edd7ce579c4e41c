// What `run --dry-run` adds for the cluster: the placement plan, and a dry run of a recipe written for
// another machine (its model directory and data files live there, not here).
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { resolve } from "node:path";
import { planExperiment, planLines } from "../cluster/plan-config.js";
import { processLines } from "../cluster/process-placement.js";
import { ConfigError } from "../config/errors.js";
import type { Experiment } from "../config/schema.js";
import { resolvedYaml } from "../experiment/run-dir.js";
import { firstPromptSection } from "./first-prompt.js";
import { PLAN_DOES_NOT_FIT, planError } from "./plan.js";
import { reportRefusals } from "./run-refusals.js";

/**
 * The placement section and its exit code: 3 when the plan does not fit or its layout needs parts that are not
 * built (the whole dry run still prints; a warning says which); a shape it cannot tell is shown, not fatal.
 */
export function placementSection(cfg: Experiment): { text: string; code: number } {
  try {
    const result = planExperiment(cfg);
    if (!result.plan.fits) process.stderr.write(`warning: placement: ${planError(result)}\n`);
    return { text: `# placement (promptcot plan)\n${[...planLines(result), ...processLines(cfg)].join("\n")}\n`, code: result.plan.fits ? 0 : PLAN_DOES_NOT_FIT };
  } catch (e) {
    // A model whose shape the planner cannot tell is the worker's to load or refuse; other errors stand.
    if (!(e instanceof ConfigError) || e.keyPath !== "model.source") throw e;
    return { text: `# placement: not planned (${e.message})\n`, code: 0 };
  }
}

/**
 * For a config written for another machine — its model directory is not here — the files it names that are
 * not here either (resolved as the run resolves them). Empty for a config whose model is here (or a built-in
 * name): its dry-run reads and checks its data as the run would, and a missing file is an error.
 */
export function missingInputs(cfg: Experiment, configDir: string): string[] {
  const src = cfg.model.source;
  const model = resolve(src.replace(/^~(?=$|\/)/, homedir()));
  // A bare name is the worker's to know (a built-in); only a path can be missing.
  if (!/^[.~]|[/\\]/.test(src) || existsSync(model)) return [];
  const out = [`model.source: ${model}`];
  const file = (key: string, p: string | undefined) => {
    if (p && !existsSync(resolve(configDir, p))) out.push(`${key}: ${resolve(configDir, p)}`);
  };
  if (cfg.data.kind === "jsonl") {
    file("data.train_path", cfg.data.train_path);
    file("data.heldout_path", cfg.data.heldout_path);
  }
  if (cfg.task === "sft") file("sft.trajectories_path", cfg.sft.trajectories_path);
  const g = cfg.train.grpo; // a KL reference checkpoint of the cluster's run: the run refuses it only where it is missing there
  if (cfg.train.algorithm === "grpo" && g.kl_coef > 0 && g.kl_reference !== "base") file("train.grpo.kl_reference", g.kl_reference);
  return out;
}

/**
 * A recipe for a cluster dry-runs anywhere: the config is validated and the plan printed; what is missing
 * here is listed (a real run refuses until it exists), and no data or model fingerprint can be taken. The
 * config's own refusals (run-refusals.ts) are errors, exit 2, as the run's.
 */
export function dryRunElsewhere(cfg: Experiment, plan: string, missing: string[], refusals: ConfigError[]): number {
  const placement = placementSection(cfg);
  process.stdout.write(
    `# resolved config\n${resolvedYaml(cfg)}\n# not on this machine (a run here refuses until they exist; no fingerprints taken)\n` +
      `${missing.map((m) => `  ${m}`).join("\n")}\n# plan (dry run: nothing started, nothing written)\n${plan}\n${placement.text}` +
      firstPromptSection(cfg, { train: [{ id: "first problem", prompt: "<the first problem's text>", answer: "", source: "" }], heldout: [] }, undefined),
  );
  process.stderr.write(`warning: dry run without ${missing.length} input(s) that are not on this machine: ${missing.map((m) => m.split(":")[0]).join(", ")}\n`);
  return reportRefusals(refusals) || placement.code; // a run stops on a refusal (exit 2) before it plans
}
