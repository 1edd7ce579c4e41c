// What `run` refuses from the config alone, before it reads data or starts anything: one list that `run` throws
// and `run --dry-run` prints (exit 2 in both), so a dry-run never passes a config that the run would stop on.
import { ConfigError } from "../config/errors.js";
import type { Experiment } from "../config/schema.js";
import { policyEngineProblem } from "../rollout/from-config.js";
import { klReferenceProblem } from "../train/grpo.js";
import { totalStepsOf } from "../train/schedule.js";

/** Every refusal, each naming its key and the fix; empty when the run may start. `inputsHere` false: a dry-run
 *  of a recipe for another machine, whose files (the KL reference checkpoint among them) are listed as missing. */
export function runRefusals(cfg: Experiment, file: string, configDir: string, inputsHere = true): ConfigError[] {
  const out: ConfigError[] = [];
  if (cfg.task === "selfplay") {
    try {
      totalStepsOf(cfg); // a cosine LR schedule without a length fails here, not at the first update
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      out.push(e.file ? e : new ConfigError(e.message, file, e.line, e.keyPath));
    }
  }
  const engine = policyEngineProblem(cfg);
  if (engine) out.push(new ConfigError(engine, file, undefined, cfg.engine.base_url ? "engine.base_url" : "engine"));
  const kl = inputsHere ? klReferenceProblem(cfg, configDir) : undefined;
  if (kl) out.push(new ConfigError(kl, file, undefined, "train.grpo.kl_reference"));
  return out;
}

/** The refusals as the one error `run` stops with (each on its own line when there are several). */
export function refusalError(refusals: ConfigError[], file: string): ConfigError | undefined {
  if (refusals.length <= 1) return refusals[0];
  const lines = refusals.map((e) => `  - ${e.format().replace(/^error: /, "")}`);
  return new ConfigError(`${refusals.length} settings that a run refuses:\n${lines.join("\n")}`, file);
}

/** For a dry-run: each refusal as an error line on stderr; the exit code a run would give (2), or 0. */
export function reportRefusals(refusals: ConfigError[]): number {
  for (const e of refusals) process.stderr.write(`${e.format()} (a run refuses this config before starting anything)\n`);
  return refusals.length ? 2 : 0;
}
