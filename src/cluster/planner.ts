// The placement planner: a pure function from a model's shape, a cluster and a parallel layout to which
// GPUs host rollout engines (tensor-parallel groups) and trainer ranks (FSDP), the memory of each GPU, and
// whether it fits; when it does not, why, and the smallest cluster that would. Formulas: docs/SCALING.md
// "Placement planner". A guard against order-of-magnitude mistakes before renting a cluster, not a
// byte-exact prediction of any framework's allocator.
import { paramCounts, type ModelShape, type ParamCounts } from "./model-shape.js";

export const GIB = 2 ** 30;
/** Per GPU, whatever it runs: CUDA context, NCCL buffers, the engine's sampling and activation buffers. */
export const RESERVE_BYTES = 2 * GIB;
/** The worker computes log-probs over this many tokens of logits at a time (promptcot_worker/memory.py). */
export const LOGIT_CHUNK_TOKENS = 256;
/** Bytes per logit element in one chunk: float32 logits, their log-softmax and its gradient. */
const LOGIT_BYTES = 12;

export interface ClusterSpec {
  nodes: number;
  /** 0 = CPU processes: memory per process is shown, no fit is checked. */
  gpusPerNode: number;
  gpuMemoryGib: number;
}

export interface ParallelSpec {
  roles: "split" | "colocated";
  tensorParallel: number;
  /** split: GPUs for rollout engines; 0 = half the GPUs. */
  rolloutGpus: number;
  /** 0 = every trainer GPU. */
  fsdp: number;
  sequenceParallel: number;
  activationCheckpointing: boolean;
  memoryFraction: number;
}

export interface Workload {
  /** Bytes per weight and activation element: 2 (bfloat16) or 4 (float32). */
  dtypeBytes: 2 | 4;
  /** Parameters with gradients and optimizer state; undefined = all. */
  trainableParams?: number;
  /** Prompt + longest completion that a rollout engine must hold. */
  genContext: number;
  /** Sequences in flight per engine at genContext. */
  genConcurrency: number;
  /** Tokens of one micro-batch per trainer rank, before sequence parallel splits it. */
  trainTokens: number;
  /** What the engines generate, for the plan's words: self-play rollouts, or only evals (sft). */
  generation?: "rollout" | "eval";
}

export interface PlanInput {
  model: ModelShape;
  cluster: ClusterSpec;
  parallel: ParallelSpec;
  workload: Workload;
}

/** Bytes on one GPU by what they hold. */
export interface Memory {
  weights: number;
  grads: number;
  optimizer: number;
  gathered: number;
  activations: number;
  logits: number;
  kvCache: number;
  reserve: number;
  total: number;
}

export interface Layout {
  totalGpus: number;
  tensorParallel: number;
  engines: number;
  rolloutGpus: number;
  trainerGpus: number;
  fsdp: number;
  replicas: number;
  sequenceParallel: number;
  problems: string[];
}

export interface Plan {
  input: PlanInput;
  params: ParamCounts;
  layout: Layout;
  /** Per GPU of a rollout engine, per trainer rank, and (colocated) per GPU doing both. */
  rollout: Memory;
  trainer: Memory;
  colocated?: Memory;
  budgetBytes: number;
  cpu: boolean;
  fits: boolean;
  reasons: string[];
  notes: string[];
}

const memory = (m: Omit<Memory, "total" | "reserve">, reserve = RESERVE_BYTES): Memory => {
  const parts = { ...m, reserve };
  return { ...parts, total: Object.values(parts).reduce((a, b) => a + b, 0) };
};

/** One rollout engine GPU: its weight shard and the KV cache of every sequence in flight at full context. */
export function rolloutMemory(s: ModelShape, p: ParamCounts, w: Workload, tp: number): Memory {
  const kvHeadsPerGpu = Math.ceil(s.kvHeads / tp);
  const kvPerToken = s.layers * 2 * kvHeadsPerGpu * s.headDim * w.dtypeBytes;
  return memory({
    weights: (w.dtypeBytes * p.total) / tp, grads: 0, optimizer: 0, gathered: 0, activations: 0, logits: 0,
    kvCache: w.genConcurrency * w.genContext * kvPerToken,
  });
}

/** Activation elements one token keeps in one block's forward and backward (see docs/SCALING.md). */
function blockWidth(s: ModelShape): number {
  const attn = 2 * s.heads * s.headDim + 2 * s.kvHeads * s.headDim + 4 * s.hidden;
  const mlp = s.experts
    ? 3 * (s.expertsPerToken * s.moeIntermediate + s.sharedExpertIntermediate)
    : 3 * s.intermediate;
  return attn + mlp;
}

/** One trainer rank: its FSDP shard of weights, gradients and optimizer state, plus activations. */
export function trainerMemory(s: ModelShape, p: ParamCounts, w: Workload, fsdp: number, sp: number, checkpointing: boolean): Memory {
  const b = w.dtypeBytes;
  const trainable = w.trainableParams ?? p.total;
  // Mixed precision keeps an fp32 master copy beside bf16 weights; AdamW's two moments are fp32 either way.
  const optimizerBytes = (b === 2 ? 4 : 0) + 8;
  const tokens = Math.ceil(w.trainTokens / sp);
  const perBlock = tokens * b * blockWidth(s);
  const activations = checkpointing ? s.layers * tokens * s.hidden * b + 2 * perBlock : (s.layers + 1) * perBlock;
  return memory({
    weights: (b * p.total) / fsdp,
    grads: (b * trainable) / fsdp,
    optimizer: (optimizerBytes * trainable) / fsdp,
    // FSDP gathers one unit's full weights to run it and prefetches the next.
    gathered: fsdp > 1 ? 2 * b * p.largestUnit : 0,
    activations,
    logits: Math.min(tokens, LOGIT_CHUNK_TOKENS) * s.vocab * LOGIT_BYTES,
    kvCache: 0,
  });
}

/** Which GPUs do what, and what in the requested layout cannot be built. */
export function resolveLayout(s: ModelShape, c: ClusterSpec, par: ParallelSpec): Layout {
  const total = c.nodes * c.gpusPerNode;
  const tp = par.tensorParallel;
  const problems: string[] = [];
  if (tp > c.gpusPerNode) problems.push(`rollout_tensor_parallel ${tp} exceeds the ${c.gpusPerNode} GPU(s) of a node (a tensor-parallel group stays inside one node)`);
  else if (c.gpusPerNode % tp) problems.push(`rollout_tensor_parallel ${tp} does not divide the ${c.gpusPerNode} GPUs of a node`);
  if (s.heads % tp) problems.push(`rollout_tensor_parallel ${tp} does not divide the model's ${s.heads} attention heads`);
  let rolloutGpus: number, trainerGpus: number;
  if (par.roles === "colocated") {
    [rolloutGpus, trainerGpus] = [total - (total % tp), total];
  } else {
    rolloutGpus = par.rolloutGpus || Math.max(tp, Math.floor(total / 2 / tp) * tp);
    trainerGpus = Math.max(0, total - rolloutGpus);
    if (par.rolloutGpus % tp) problems.push(`parallel.rollout_gpus ${par.rolloutGpus} is not a multiple of rollout_tensor_parallel ${tp}`);
    if (trainerGpus === 0) problems.push(`split roles leave no GPU for the trainer: ${rolloutGpus} rollout GPU(s) of ${total}`);
  }
  const engines = Math.floor(rolloutGpus / tp);
  if (engines === 0) problems.push(`no rollout engine fits: ${total} GPU(s), ${tp} per engine`);
  const fsdp = par.fsdp || trainerGpus;
  if (trainerGpus > 0 && trainerGpus % fsdp) problems.push(`parallel.fsdp ${fsdp} does not divide the ${trainerGpus} trainer GPUs`);
  if (fsdp % par.sequenceParallel) problems.push(`parallel.sequence_parallel ${par.sequenceParallel} does not divide the FSDP group of ${fsdp}`);
  return {
    totalGpus: total, tensorParallel: tp, engines, rolloutGpus, trainerGpus, fsdp, sequenceParallel: par.sequenceParallel,
    replicas: fsdp ? Math.max(1, Math.floor(trainerGpus / fsdp)) : 0, problems,
  };
}

const gib = (b: number) => `${(b / GIB).toFixed(1)} GiB`;

/** The plan for exactly this cluster and layout. */
export function planPlacement(input: PlanInput): Plan {
  const { model: s, cluster: c, parallel: par, workload: w } = input;
  const params = paramCounts(s);
  const cpu = c.gpusPerNode === 0;
  const layout = cpu ? cpuLayout() : resolveLayout(s, c, par);
  const fsdp = Math.max(1, layout.fsdp);
  const rollout = rolloutMemory(s, params, w, cpu ? 1 : Math.max(1, layout.tensorParallel));
  const trainer = trainerMemory(s, params, w, fsdp, Math.min(par.sequenceParallel, fsdp), par.activationCheckpointing);
  const colocated = par.roles === "colocated" && !cpu ? larger(rollout, trainer) : undefined;
  const budgetBytes = c.gpuMemoryGib * GIB * par.memoryFraction;
  const reasons = cpu ? [] : [...clusterBounds(input, params, budgetBytes), ...layout.problems, ...memoryReasons(rollout, trainer, colocated, budgetBytes, input)];
  return { input, params, layout, rollout, trainer, colocated, budgetBytes, cpu, fits: reasons.length === 0, reasons, notes: notesOf(input, params) };
}

function cpuLayout(): Layout {
  return { totalGpus: 0, tensorParallel: 1, engines: 0, rolloutGpus: 0, trainerGpus: 0, fsdp: 1, replicas: 1, sequenceParallel: 1, problems: [] };
}

/** A colocated GPU holds the larger role at a time (the idle one is offloaded), one reserve. */
function larger(a: Memory, b: Memory): Memory {
  return a.total >= b.total ? a : b;
}

/** Whatever the layout: the training state must fit all GPUs together, the weights one node's GPUs. */
function clusterBounds({ cluster: c, workload: w }: PlanInput, p: ParamCounts, budget: number): string[] {
  const out: string[] = [];
  const trainable = w.trainableParams ?? p.total;
  const state = w.dtypeBytes * p.total + (w.dtypeBytes + (w.dtypeBytes === 2 ? 4 : 0) + 8) * trainable;
  const total = c.nodes * c.gpusPerNode;
  if (state > total * budget) {
    out.push(`the training state alone (weights, gradients, fp32 master, AdamW) is ${gib(state)}; all ${total} GPU(s) together hold ${gib(total * budget)}`);
  }
  const weights = w.dtypeBytes * p.total;
  if (weights > c.gpusPerNode * budget) out.push(`the weights alone are ${gib(weights)}; a rollout engine within one node holds at most ${gib(c.gpusPerNode * budget)}`);
  return out;
}

function memoryReasons(rollout: Memory, trainer: Memory, colocated: Memory | undefined, budget: number, { cluster: c, workload: w }: PlanInput): string[] {
  const of = `${gib(budget)} usable of ${c.gpuMemoryGib} GiB`;
  if (colocated) return colocated.total > budget ? [`a colocated GPU needs ${gib(colocated.total)} (${biggest(colocated)}); ${of}`] : [];
  const out: string[] = [];
  if (rollout.total > budget) out.push(`a${w.generation === "eval" ? "n eval" : " rollout"} engine GPU needs ${gib(rollout.total)} (${biggest(rollout)}); ${of}`);
  if (trainer.total > budget) out.push(`a trainer rank needs ${gib(trainer.total)} (${biggest(trainer)}); ${of}`);
  return out;
}

const PART_NAMES: Record<Exclude<keyof Memory, "total">, string> = {
  weights: "weights", grads: "gradients", optimizer: "fp32 master + AdamW", gathered: "FSDP gathered units",
  activations: "activations", logits: "logits", kvCache: "KV cache", reserve: "reserve",
};

/** The two largest parts, which say what to change. */
function biggest(m: Memory): string {
  const { total: _t, ...parts } = m;
  const top = (Object.entries(parts) as [keyof typeof PART_NAMES, number][]).sort((a, b) => b[1] - a[1]).slice(0, 2);
  return top.map(([k, v]) => `${PART_NAMES[k]} ${gib(v)}`).join(", ");
}

function notesOf({ model: s, workload: w }: PlanInput, p: ParamCounts): string[] {
  const notes: string[] = [];
  if (s.maxPositions && w.genContext > s.maxPositions) {
    notes.push(`max context ${w.genContext} exceeds the model's max_position_embeddings ${s.maxPositions}: engine and trainer need RoPE scaling (YaRN factor ≥ ${Math.ceil((w.genContext / s.maxPositions) * 10) / 10})`);
  }
  if (s.experts) notes.push(`MoE: ${s.experts} experts, ${s.expertsPerToken} per token; ${(p.active / 1e9).toFixed(2)}B of ${(p.total / 1e9).toFixed(2)}B parameters active per token`);
  return notes;
}

export interface SmallestFit {
  cluster: ClusterSpec;
  parallel: ParallelSpec;
  plan: Plan;
}

/** Powers of two up to n, then n itself: the tensor-parallel degrees worth trying. */
const degrees = (n: number) => [...new Set([...[1, 2, 4, 8, 16].filter((d) => d <= n), n])];

/**
 * The smallest cluster (fewest GPUs, then fewest nodes) of the same GPU on which some layout fits: the
 * configured sequence parallel and memory fraction; roles (the configured ones first), tensor parallel
 * and the rollout/trainer split searched (one engine is enough to fit; add engines for throughput), FSDP
 * over every trainer GPU.
 */
export function smallestFit(input: PlanInput, maxGpus = 1024): SmallestFit | undefined {
  const perNode = [...new Set([1, 2, 4, 8, input.cluster.gpusPerNode || 8])].sort((a, b) => a - b);
  const clusters = perNode
    .flatMap((g) => Array.from({ length: Math.floor(maxGpus / g) }, (_, i) => ({ nodes: i + 1, gpusPerNode: g, gpuMemoryGib: input.cluster.gpuMemoryGib })))
    .sort((a, b) => a.nodes * a.gpusPerNode - b.nodes * b.gpusPerNode || a.nodes - b.nodes);
  for (const cluster of clusters) {
    for (const parallel of layoutsFor(input, cluster)) {
      const plan = planPlacement({ ...input, cluster, parallel });
      if (plan.fits) return { cluster, parallel, plan };
    }
  }
  return undefined;
}

function layoutsFor(input: PlanInput, c: ClusterSpec): ParallelSpec[] {
  const par = input.parallel;
  const tps = [par.tensorParallel, ...degrees(c.gpusPerNode)].filter((tp, i, a) => a.indexOf(tp) === i && tp <= c.gpusPerNode);
  const roles: ParallelSpec["roles"][] = par.roles === "split" ? ["split", "colocated"] : ["colocated", "split"];
  return roles.flatMap((r) => tps.map((tp) => ({ ...par, roles: r, tensorParallel: tp, rolloutGpus: r === "split" ? tp : 0, fsdp: 0 })));
}
