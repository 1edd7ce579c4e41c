// What every synthesis stage gets: the resolved config, the journal, the two role pools, the sinks.
// One base model may serve both roles, but each role has its own worker process, weights and checkpoints.
import type { WorkerPool } from "../cluster/pool.js";
import type { Experiment } from "../config/schema.js";
import type { Journal } from "../experiment/journal.js";
import type { MetricsSink, StageTimer } from "../telemetry/metrics.js";

export type Role = "rationale" | "prompt";

export interface SynthContext {
  cfg: Experiment;
  runDir: string;
  /** Directory of the experiment file: relative paths in the config resolve against it. */
  configDir: string;
  journal: Journal;
  /** rationale: q(z | c, x); prompt: p(z, x | c). Worker 0 of each pool trains. */
  pools: Record<Role, WorkerPool>;
  metrics: MetricsSink;
  timer: StageTimer;
  log: (msg: string) => void;
}
