// `promptcot plan EXPERIMENT.yaml [--set …] [--json]`: where each role would run and what each GPU holds.
// Exit 0 when the plan fits, 3 when it does not (with the reason and the smallest cluster that fits) or its
// layout needs parts the code does not build (named: built-parts.ts), 2 for a bad config.
import type { Command } from "commander";
import { planExperiment, planLines, type PlanResult } from "../cluster/plan-config.js";
import { checkPlacement, processLines, processSlots } from "../cluster/process-placement.js";
import { loadExperiment } from "../config/load.js";

export const PLAN_DOES_NOT_FIT = 3;

const collect = (v: string, prev: string[]) => [...prev, v];

export function planCommand(file: string, o: { set: string[]; json?: boolean }): number {
  const { config } = loadExperiment(file, o.set);
  checkPlacement(config, file);
  const result = planExperiment(config);
  const json = { ...planJson(result), processes: processSlots(config) };
  process.stdout.write(o.json ? `${JSON.stringify(json, null, 2)}\n` : `${[...planLines(result), ...processLines(config)].join("\n")}\n`);
  if (result.plan.fits) return 0;
  process.stderr.write(`error: ${planError(result)}\n`);
  return PLAN_DOES_NOT_FIT;
}

/** Why the plan is not a "fits": its memory, else the parts that are not built. */
export function planError({ plan }: PlanResult): string {
  const missing = `the layout needs ${plan.missing.length} part(s) that are not built: ${plan.missing.join("; ")}`;
  if (plan.memoryFits) return missing;
  return `the plan does not fit: ${plan.reasons.join("; ")}${plan.missing.length ? `; and ${missing}` : ""}`;
}

/** The plan for scripts and tests: bytes per GPU, the layout, the verdict, the smallest fitting cluster. */
export function planJson({ plan, smallest, engine }: PlanResult) {
  return {
    model: plan.input.model,
    params: { total: plan.params.total, active: plan.params.active },
    cluster: plan.input.cluster,
    parallel: plan.input.parallel,
    workload: plan.input.workload,
    layout: plan.layout,
    engine,
    trainerRanks: plan.input.trainerRanks,
    memory: { rollout: plan.rollout, trainer: plan.trainer, trainerStartup: plan.trainerStartup, colocated: plan.colocated, budget: plan.budgetBytes },
    cpu: plan.cpu,
    memoryFits: plan.memoryFits,
    fits: plan.fits,
    reasons: plan.reasons,
    missing: plan.missing,
    notes: plan.notes,
    smallest: smallest ? { cluster: smallest.cluster, layout: smallest.plan.layout } : smallest,
  };
}

export function registerPlan(program: Command, setCode: (code: number) => void): void {
  program
    .command("plan")
    .description("place rollout engines and trainer ranks on the cluster's GPUs and check each GPU's memory (exit 3 if it does not fit or needs parts not built)")
    .argument("<experiment>", "experiment YAML file")
    .option("--set <key.path=value>", "override a config value (repeatable)", collect, [])
    .option("--json", "print the plan as JSON (bytes)")
    .action((file: string, o: { set: string[]; json?: boolean }) => {
      setCode(planCommand(file, o));
    });
}
