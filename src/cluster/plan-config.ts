// From an experiment's config to the planner's input, and the plan as text (`promptcot plan`, `run --dry-run`).
import { ConfigError } from "../config/errors.js";
import type { Experiment } from "../config/schema.js";
import { colocatedBuilt, configGaps, configNotes, engineLabel } from "./built-parts.js";
import { paramCounts, resolveModelShape, type ModelShape } from "./model-shape.js";
import { GIB, planPlacement, smallestFit, type Memory, type Plan, type PlanInput, type SmallestFit, type Workload } from "./planner.js";

export function planInputOf(cfg: Experiment, shape: ModelShape = resolveModelShape(cfg.model.source)): PlanInput {
  const par = cfg.parallel;
  checkEngineTensorParallel(cfg);
  return {
    model: shape,
    cluster: { nodes: cfg.cluster.nodes, gpusPerNode: cfg.cluster.gpus_per_node, gpuMemoryGib: cfg.cluster.gpu_memory_gib },
    parallel: {
      roles: par.roles, tensorParallel: par.rollout_tensor_parallel, rolloutGpus: par.rollout_gpus, fsdp: par.fsdp,
      sequenceParallel: par.sequence_parallel, memoryFraction: par.memory_fraction,
    },
    workload: workloadOf(cfg, shape),
    trainerRanks: cfg.workers.trainer_ranks,
    colocatedBuilt: colocatedBuilt(cfg),
  };
}

/** A vLLM engine's own tensor_parallel_size is what the plan's TP groups describe: the two must agree. */
function checkEngineTensorParallel(cfg: Experiment): void {
  const engine = cfg.engine as { type?: string; vllm?: { tensor_parallel_size?: number } };
  const tp = engine.type === "vllm" ? engine.vllm?.tensor_parallel_size : undefined;
  if (tp !== undefined && tp !== cfg.parallel.rollout_tensor_parallel) {
    throw new ConfigError(
      `engine.vllm.tensor_parallel_size is ${tp} but parallel.rollout_tensor_parallel is ${cfg.parallel.rollout_tensor_parallel}; set both to the GPUs one engine spans`,
      undefined, undefined, "parallel.rollout_tensor_parallel",
    );
  }
}

/** What generation and training must hold, from the task's sampling and batch settings. */
function workloadOf(cfg: Experiment, shape: ModelShape): Workload {
  const par = cfg.parallel;
  const gen = generationOf(cfg);
  const completion = cfg.task === "sft" ? cfg.sft.max_completion_tokens : cfg.task === "synthesis" ? gen.maxTokens : cfg.rollout.max_tokens;
  const trainContext = par.max_prompt_tokens + completion;
  const perItem = sequencesPerPass(cfg);
  const { micro_batch_size: micro, max_tokens_per_micro_batch: cap } = microBatchOf(cfg);
  const trainTokens = par.micro_batch_tokens || (cap ? Math.max(cap, perItem * trainContext) : micro * perItem * trainContext);
  return {
    dtypeBytes: cfg.model.dtype === "bfloat16" ? 2 : 4,
    trainableParams: trainableParams(shape, cfg.model.trainable_layers),
    genContext: par.max_prompt_tokens + gen.maxTokens,
    genConcurrency: par.rollout_concurrency || gen.concurrency,
    trainTokens,
    activationCheckpointing: par.activation_checkpointing,
    generation: cfg.task === "sft" ? "eval" : "rollout",
  };
}

/** Sequences of one training item in one forward/backward: a DPO pair is two (chosen and rejected together), or
 *  one with train.dpo_pair_passes split (each in its own pass, the worker's _dpo_split_passes). */
export function sequencesPerPass(cfg: Pick<Experiment, "task" | "train">): 1 | 2 {
  return cfg.task === "selfplay" && cfg.train.algorithm === "dpo" && cfg.train.dpo_pair_passes === "joint" ? 2 : 1;
}

function generationOf(cfg: Experiment): { maxTokens: number; concurrency: number } {
  const samplings =
    cfg.task === "synthesis"
      ? [cfg.synthesis.annotator.sampling, cfg.synthesis.em.sampling, cfg.synthesis.generate.sampling].map((s) => ({ ...s, samples: cfg.synthesis.em.k }))
      : cfg.task === "sft"
        ? [{ ...cfg.eval, samples: cfg.eval.samples_per_prompt }]
        : [cfg.rollout, cfg.eval].map((s) => ({ ...s, samples: s.samples_per_prompt }));
  return {
    maxTokens: Math.max(...samplings.map((s) => s.max_tokens)),
    concurrency: Math.max(...samplings.map((s) => s.samples * s.prompts_per_request)),
  };
}

function microBatchOf(cfg: Experiment): { micro_batch_size: number; max_tokens_per_micro_batch: number } {
  return cfg.task === "synthesis" ? cfg.synthesis.em.train : cfg.train;
}

/** The worker trains only the last N blocks when model.trainable_layers is N (plus nothing else). */
function trainableParams(shape: ModelShape, layers: number): number | undefined {
  if (!layers) return undefined;
  return paramCounts(shape).perLayer.slice(-layers).reduce((a, b) => a + b, 0);
}

export interface PlanResult {
  plan: Plan;
  /** How the rollout engines run and follow the policy's weights. */
  engine: string;
  /** Only when the memory does not fit. */
  smallest?: SmallestFit | null;
}

/** The planner's plan, with the parts the config's processes lack (built-parts.ts) among what is missing. */
export function planExperiment(cfg: Experiment): PlanResult {
  const placed = planPlacement(planInputOf(cfg));
  const missing = [...placed.missing, ...configGaps(cfg, placed.layout)];
  const plan = { ...placed, missing, fits: placed.memoryFits && missing.length === 0, notes: [...placed.notes, ...configNotes(cfg, placed.layout)] };
  const engine = engineLabel(cfg);
  return plan.memoryFits ? { plan, engine } : { plan, engine, smallest: smallestFit(plan.input) ?? null };
}

const gib = (b: number) => (b / GIB).toFixed(1);
const billions = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : `${(n / 1e6).toFixed(1)}M`);

/** The plan as lines: model, placement by node, a per-GPU memory table, what is not built, the verdict. */
export function planLines({ plan, smallest, engine }: PlanResult): string[] {
  const { model: s, cluster: c, workload: w, parallel: par } = plan.input;
  const gen = w.generation ?? "rollout";
  const lines = [
    `model: ${s.name} — ${billions(plan.params.total)} parameters${s.experts ? ` (${billions(plan.params.active)} active)` : ""}, ${s.layers} layers, hidden ${s.hidden}, ` +
      `${s.heads} heads / ${s.kvHeads} KV heads × ${s.headDim}, vocab ${s.vocab}; shape from ${s.from}`,
    `workload: ${w.dtypeBytes === 2 ? "bf16" : "fp32"}; generation ${w.genConcurrency} sequences per engine at ${w.genContext} tokens; ` +
      `training ${w.trainTokens} tokens per micro-batch per rank, ${w.activationCheckpointing === false ? "every block's activations kept (activation_checkpointing false)" : "blocks checkpointed"}`,
  ];
  if (plan.cpu) return [...lines, ...cpuLines(plan, gen, engine), ...plan.notes.map((n) => `note: ${n}`)];
  const l = plan.layout;
  lines.push(
    `cluster: ${c.nodes} node(s) × ${c.gpusPerNode} GPU(s) of ${c.gpuMemoryGib} GiB (plan may fill ${Math.round(par.memoryFraction * 100)}%); roles ${par.roles}`,
    `${gen}: ${l.engines} engine(s) × TP ${l.tensorParallel} on ${l.rolloutGpus} GPU(s) (${engine}); ` +
      `trainer: ${l.trainerGpus} rank(s), FSDP ${l.fsdp} × ${l.replicas} replica(s), sequence parallel ${l.sequenceParallel}${l.sequenceParallel > 1 ? " (not built)" : ""}`,
    ...placementLines(plan),
    "",
    ...(l.problems.length ? ["(memory of the layout as configured, which this cluster cannot build: see below)"] : []),
    ...memoryTable(plan, gen),
    "",
    ...plan.notes.map((n) => `note: ${n}`),
  );
  if (plan.missing.length) lines.push("not built (the layout needs these parts; the code does not have them):", ...plan.missing.map((m) => `  - ${m}`));
  if (plan.fits) return [...lines, "fits: yes"];
  if (plan.memoryFits) return [...lines, `memory fits: yes; fits: NO (${plan.missing.length} part(s) not built, above)`];
  lines.push("fits: NO", ...plan.reasons.map((r) => `  - ${r}`));
  if (smallest) lines.push(`smallest cluster that fits in memory (built layouts only): ${describeFit(smallest)}`);
  else if (smallest === null) lines.push(`no cluster of up to 1024 GPUs of ${c.gpuMemoryGib} GiB fits this layout; shorten the context, the micro-batch or the concurrency`);
  return lines;
}

export function describeFit(f: SmallestFit): string {
  const l = f.plan.layout;
  return `${f.cluster.nodes} node(s) × ${f.cluster.gpusPerNode} GPU(s) (${l.totalGpus} GPUs of ${f.cluster.gpuMemoryGib} GiB): ` +
    `cluster.nodes=${f.cluster.nodes} cluster.gpus_per_node=${f.cluster.gpusPerNode} parallel.roles=${f.parallel.roles} parallel.rollout_tensor_parallel=${l.tensorParallel}` +
    (f.parallel.roles === "split" ? ` parallel.rollout_gpus=${l.rolloutGpus}` : "") + ` parallel.fsdp=${l.fsdp} parallel.sequence_parallel=1 workers.trainer_ranks=${l.trainerGpus}`;
}

function cpuLines(plan: Plan, gen: string, engine: string): string[] {
  const t = plan.trainer;
  const ranks = plan.input.trainerRanks;
  const st = plan.trainerStartup;
  const who = ranks > 1 ? `trainer (worker 0), each of ${ranks} FSDP ranks` : "trainer (worker 0)";
  return [
    "cluster: CPU processes (cluster.gpus_per_node 0): no GPU placement; host memory per worker process:",
    `  ${who}: ${gib(t.total)} GiB in a step (weights ${gib(t.weights)}, grads ${gib(t.grads)}, optimizer ${gib(t.optimizer)}` +
      `${t.gathered ? `, gathered ${gib(t.gathered)}` : ""}, activations ${gib(t.activations)}, logits ${gib(t.logits)}` +
      `${t.mapped ? `, safetensors still mapped ${gib(t.mapped)}` : ""}); ` +
      `${gib(st.total)} GiB at start-up (weights ${gib(st.weights)}, safetensors pages read ${gib(st.mappedSource)}` +
      `${st.readBuffer ? `, read buffer ${gib(st.readBuffer)}` : ""})`,
    `  ${gen} (${engine}): ${gib(plan.rollout.total)} GiB (weights ${gib(plan.rollout.weights)}, KV cache ${gib(plan.rollout.kvCache)})`,
  ];
}

/** Which GPUs of each node host which engine or trainer ranks; long clusters are elided after 8 nodes. */
function placementLines(plan: Plan): string[] {
  const { cluster: c, parallel: par } = plan.input;
  const l = plan.layout;
  const out: string[] = [];
  for (let node = 0; node < c.nodes; node++) {
    if (node === 8 && c.nodes > 9) {
      out.push(`  … nodes 8-${c.nodes - 2} follow the same pattern`);
      node = c.nodes - 1;
    }
    const parts: string[] = [];
    const first = node * c.gpusPerNode;
    const gpus = Array.from({ length: c.gpusPerNode }, (_, i) => first + i);
    const engineGpus = gpus.filter((g) => g < l.engines * l.tensorParallel);
    const engines = [...new Set(engineGpus.map((g) => Math.floor(g / l.tensorParallel)))];
    if (engines.length > 2) parts.push(`engines ${range(engines)} (TP ${l.tensorParallel} each) [GPUs ${range(engineGpus.map((g) => g - first))}]`);
    else for (const e of engines) {
      parts.push(`engine ${e} [GPUs ${range(engineGpus.filter((g) => Math.floor(g / l.tensorParallel) === e).map((g) => g - first))}]`);
    }
    const trainerStart = par.roles === "colocated" ? 0 : l.rolloutGpus;
    const ranks = gpus.filter((g) => g >= trainerStart && g < trainerStart + l.trainerGpus);
    if (ranks.length) parts.push(`trainer ranks ${range(ranks.map((g) => g - trainerStart))} [GPUs ${range(ranks.map((g) => g - first))}]`);
    out.push(`  node ${node}: ${parts.join(" · ") || "idle"}`);
  }
  return out;
}

const range = (xs: number[]) => (xs.length === 1 ? `${xs[0]}` : `${xs[0]}-${xs[xs.length - 1]}`);

const ROWS: [keyof Memory, string][] = [
  ["weights", "weights"], ["grads", "gradients"], ["optimizer", "AdamW (+ fp32 master)"], ["gathered", "FSDP gathered units"],
  ["activations", "activations"], ["logits", "logits (one chunk)"], ["optimizerStep", "AdamW step temps"], ["kvCache", "KV cache"],
  ["reserve", "runtime reserve"], ["total", "total (see below)"],
];

function memoryTable(plan: Plan, gen: string): string[] {
  const cols: [string, Memory][] = plan.colocated
    ? [[`${gen} phase`, plan.rollout], ["training phase", plan.trainer], ["colocated GPU", plan.colocated]]
    : [[`${gen} GPU`, plan.rollout], ["trainer GPU", plan.trainer]];
  const width = 22;
  const head = `${"per GPU (GiB)".padEnd(width)}${cols.map(([n]) => n.padStart(16)).join("")}`;
  const rows = ROWS.map(([k, label]) => `${label.padEnd(width)}${cols.map(([, m]) => gib(m[k]).padStart(16)).join("")}`);
  return [
    head, ...rows, `${"budget".padEnd(width)}${cols.map(() => gib(plan.budgetBytes).padStart(16)).join("")}`,
    "(total: what persists, plus the larger of the backward's transients — gathered units, activations, logits — and the AdamW step's)",
  ];
}
