// What every stage gets: the resolved config, the journal, the workers, the grader, the sinks.
import type { WorkerPool } from "../cluster/pool.js";
import type { Experiment } from "../config/schema.js";
import type { Problem } from "../data/problems.js";
import type { PolicyEngine } from "../rollout/policy-engine.js";
import type { MetricsSink, StageTimer } from "../telemetry/metrics.js";
import type { CodeGrader, MathGrader } from "../verify/types.js";
import type { Journal } from "./journal.js";

export interface RunContext {
  cfg: Experiment;
  runDir: string;
  /** Directory of the experiment file: relative paths in the config resolve against it. */
  configDir: string;
  journal: Journal;
  pool: WorkerPool;
  grader: MathGrader;
  /** The sandbox grader, present when the run's problems include code problems (verify/dispatch.ts). */
  codeGrader?: CodeGrader;
  /** Samples the policy when engine.type is not "worker" (llama_cpp); absent: the pool's workers generate. */
  engine?: PolicyEngine;
  metrics: MetricsSink;
  timer: StageTimer;
  problems: { train: Problem[]; heldout: Problem[] };
  log: (msg: string) => void;
}
