// The placement planner: a pure function from a model's shape, a cluster and a parallel layout to which
// GPUs host rollout engines (tensor-parallel groups) and trainer ranks (FSDP), the memory of each GPU, and
// whether it fits; when it does not, why, and the smallest cluster that would. The trainer's memory is what
// the worker builds (one rank: promptcot_worker/backend_transformers.py; N ranks: sharded.py), checked against
// measured ranks on CPU (test/planner-measured.test.ts); a layout part the code does not build is named
// (built-parts.ts) and never "fits". Formulas: docs/SCALING.md "Placement planner".
import { layoutGaps } from "./built-parts.js";
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
  /** Requested; not built, so activations are sized for 1 and the plan names it as missing. */
  sequenceParallel: number;
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
  /** parallel.activation_checkpointing: blocks recompute their activations in the backward (default true);
   *  false keeps every block's internals until its backward. */
  activationCheckpointing?: boolean;
  /** What the engines generate, for the plan's words: self-play rollouts, or only evals (sft). */
  generation?: "rollout" | "eval";
}

export interface PlanInput {
  model: ModelShape;
  cluster: ClusterSpec;
  parallel: ParallelSpec;
  workload: Workload;
  /** workers.trainer_ranks: the rank processes the run starts (CPU plans size these; GPU plans check them). */
  trainerRanks: number;
  /** Colocated roles exist only where one process both trains and generates (engine.type worker, one worker). */
  colocatedBuilt?: boolean;
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
  /** Host pages of the safetensors file a single-rank CPU worker keeps mapped: transformers loads a tensor
   *  whose dtype matches as a view of the file's mmap (all but the fused experts, which it copies), so those
   *  pages stay; 0 on GPUs (the weights are copied to the device) and for FSDP ranks (their reader is dropped
   *  after start-up). */
  mapped: number;
  /** AdamW's temporaries while it steps, after the backward's buffers are freed: one fp32 copy of the local
   *  trainable parameters on a GPU (foreach kernels), two of the largest local tensor on a CPU (per tensor). */
  optimizerStep: number;
  reserve: number;
  /** What persists (weights, gradients, optimizer state, KV cache, mapped pages, reserve) plus the larger of
   *  the backward's transients (gathered units, activations, logits) and the optimizer step's. */
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

/** A trainer rank while it starts, before any step. */
export interface Startup {
  /** One rank: the model in its dtype (on a CPU only the fused experts' copies; the rest is mappedSource);
   *  N ranks: this rank's fp32 shards (the masters). */
  weights: number;
  /** The safetensors pages the rank reads through mmap (its rows, in model.dtype on disk): host memory. */
  mappedSource: number;
  /** FSDP ranks: the rows of the largest tensor being read (fused experts: the per-expert copies and their
   *  stack), and their fp32 cast when the source is bf16. */
  readBuffer: number;
  total: number;
}

export interface Plan {
  input: PlanInput;
  params: ParamCounts;
  layout: Layout;
  /** Per GPU of a rollout engine, per trainer rank, and (colocated) per GPU doing both. */
  rollout: Memory;
  trainer: Memory;
  trainerStartup: Startup;
  colocated?: Memory;
  budgetBytes: number;
  cpu: boolean;
  /** Every GPU's memory within budget and the cluster bounds met (whether or not the layout is built). */
  memoryFits: boolean;
  /** memoryFits and nothing missing: the only "fits: yes". */
  fits: boolean;
  reasons: string[];
  /** Parts of the layout the code does not build (the key, what is missing, what works). */
  missing: string[];
  notes: string[];
}

type Parts = Omit<Memory, "total" | "reserve" | "mapped" | "optimizerStep"> & { mapped?: number; optimizerStep?: number };

const memory = (m: Parts, reserve = RESERVE_BYTES): Memory => {
  const parts = { ...m, mapped: m.mapped ?? 0, optimizerStep: m.optimizerStep ?? 0, reserve };
  const persistent = parts.weights + parts.grads + parts.optimizer + parts.kvCache + parts.mapped + reserve;
  return { ...parts, total: persistent + Math.max(parts.gathered + parts.activations + parts.logits, parts.optimizerStep) };
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

/** A unit's unsharded gradient in the compute dtype, and the flat fp32 buffer FSDP copies it into for the
 *  reduce-scatter (MixedPrecisionPolicy reduce_dtype float32) before it frees it. */
const unitGrad = (b: number, n: number) => b * n + 4 * n;

/**
 * One trainer rank as the worker builds it (sequence parallel is not built). Activations: with checkpointed
 * blocks, each block's input plus one block recomputed with its gradients; without, every block's internals.
 * ranks = 1, the single-rank backend: the model in its dtype (on a CPU, only the fused experts are copies:
 * the other tensors are views of the mapped safetensors, assumed in model.dtype); bf16 keeps fp32 masters
 * beside it, the bf16 gradients of a micro-batch next to the fp32 master gradients they are summed into; AdamW.
 * ranks > 1, an FSDP2 rank: fp32 shards (they are the masters), fp32 sharded gradients and moments, 16 bytes
 * per local trainable parameter; gathered in the compute dtype: the root unit (lm_head, final norm; tied
 * embeddings) held through the forward and backward with its unsharded gradient, and at the peak of the
 * backward the larger of: a block running, the next prefetched and the first's gradient (with its reduce
 * buffer); the untied embedding unit and its gradient (its own unit, last in the backward); the root's reduce.
 */
export function trainerMemory(s: ModelShape, p: ParamCounts, w: Workload, ranks: number, cpu = false): Memory {
  const b = w.dtypeBytes;
  const trainable = w.trainableParams ?? p.total;
  const optimizerStep = (cpu ? 2 * 4 * Math.min(p.largestTensor, trainable) : 4 * trainable) / Math.max(1, ranks);
  const tokens = w.trainTokens;
  const perBlock = tokens * b * blockWidth(s);
  // checkpointed: each block's input, and one block re-run with its gradients; kept: every block's internals,
  // and the gradients of the block whose backward runs
  const activations = w.activationCheckpointing === false ? (s.layers + 1) * perBlock : s.layers * tokens * s.hidden * b + 2 * perBlock;
  const logits = Math.min(tokens, LOGIT_CHUNK_TOKENS) * s.vocab * LOGIT_BYTES;
  if (ranks <= 1) {
    return memory({
      weights: b * (cpu ? p.expertParams : p.total),
      grads: (b === 2 ? 2 + 4 : 4) * trainable,
      optimizer: ((b === 2 ? 4 : 0) + 8) * trainable,
      gathered: 0, activations, logits, kvCache: 0, optimizerStep,
      // CPU: the tensors loaded as views of the file (all but the fused experts, which are copies) keep it mapped
      mapped: cpu ? b * (p.total - p.expertParams) : 0,
    });
  }
  const root = p.embedding + s.hidden; // lm_head (or the tied embedding) and the final norm
  const block = Math.max(...p.perLayer);
  const embed = s.tiedEmbeddings ? 0 : p.embedding;
  return memory({
    weights: (4 * p.total) / ranks,
    grads: (4 * trainable) / ranks,
    optimizer: (8 * trainable) / ranks,
    gathered: 2 * b * root + Math.max(2 * b * block + unitGrad(b, block), b * embed + unitGrad(b, embed), 4 * root),
    activations, logits, kvCache: 0, optimizerStep,
  });
}

/** A trainer rank at start-up: its weights and the source pages it maps (the checkpoint in model.dtype). */
export function trainerStartup(p: ParamCounts, w: Workload, ranks: number, cpu = false): Startup {
  const src = w.dtypeBytes;
  const weights = ranks <= 1 ? src * (cpu ? p.expertParams : p.total) : (4 * p.total) / ranks;
  // one rank on a CPU: the tensors that are views of the file (not the fused experts); FSDP ranks: their rows
  const mappedSource = ranks <= 1 ? src * (cpu ? p.total - p.expertParams : p.total) : (src * p.total) / ranks;
  const perRow = (p.largestIsFusedExperts ? 2 * src : src) + (src === 4 ? 0 : 4);
  const readBuffer = ranks <= 1 ? 0 : (perRow * p.largestTensor) / ranks;
  return { weights, mappedSource, readBuffer, total: weights + mappedSource + readBuffer };
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
  const layout = cpu ? cpuLayout(input.trainerRanks) : resolveLayout(s, c, par);
  // CPU: the ranks the run starts; GPU: the layout's FSDP group (a different workers.trainer_ranks is a gap).
  const ranks = cpu ? input.trainerRanks : Math.max(1, layout.fsdp);
  const reserve = cpu ? 0 : RESERVE_BYTES;
  const rollout = withReserve(rolloutMemory(s, params, w, cpu ? 1 : Math.max(1, layout.tensorParallel)), reserve);
  const trainer = withReserve(trainerMemory(s, params, w, ranks, cpu), reserve);
  const colocated = par.roles === "colocated" && !cpu ? larger(rollout, trainer) : undefined;
  const budgetBytes = c.gpuMemoryGib * GIB * par.memoryFraction;
  const reasons = cpu ? [] : [...clusterBounds(input, params, budgetBytes), ...layout.problems, ...memoryReasons(rollout, trainer, colocated, budgetBytes, input)];
  const missing = cpu ? [] : layoutGaps(par, layout, input.colocatedBuilt ?? false);
  return {
    input, params, layout, rollout, trainer, trainerStartup: trainerStartup(params, w, ranks, cpu), colocated, budgetBytes, cpu,
    memoryFits: reasons.length === 0, fits: reasons.length === 0 && missing.length === 0, reasons, missing, notes: notesOf(input, params),
  };
}

function withReserve(m: Memory, reserve: number): Memory {
  const { total: _t, reserve: _r, ...parts } = m;
  return memory(parts, reserve);
}

function cpuLayout(ranks: number): Layout {
  return { totalGpus: 0, tensorParallel: 1, engines: 0, rolloutGpus: 0, trainerGpus: 0, fsdp: ranks, replicas: 1, sequenceParallel: 1, problems: [] };
}

/** A colocated GPU holds the larger role at a time (the idle one is offloaded), one reserve. */
function larger(a: Memory, b: Memory): Memory {
  return a.total >= b.total ? a : b;
}

/** Whatever the layout: the training state must fit all GPUs together, the weights one node's GPUs. */
function clusterBounds({ cluster: c, workload: w }: PlanInput, p: ParamCounts, budget: number): string[] {
  const out: string[] = [];
  const trainable = w.trainableParams ?? p.total;
  // The sharded trainer's fp32 weights (the masters), fp32 gradients and AdamW moments, over all its ranks.
  const state = 4 * (p.total - trainable) + 16 * trainable;
  const total = c.nodes * c.gpusPerNode;
  if (state > total * budget) {
    out.push(`the training state alone (fp32 weights, gradients, AdamW) is ${gib(state)}; all ${total} GPU(s) together hold ${gib(total * budget)}`);
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
  weights: "weights", grads: "gradients", optimizer: "AdamW (+ fp32 master)", gathered: "FSDP gathered units",
  activations: "activations", logits: "logits", kvCache: "KV cache", mapped: "mapped safetensors", optimizerStep: "optimizer step", reserve: "reserve",
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
 * The smallest cluster (fewest GPUs, then fewest nodes) of the same GPU on which some built layout fits in
 * memory: the configured memory fraction; roles (the configured ones first; colocated only where built),
 * tensor parallel and the rollout/trainer split searched (one engine is enough to fit; add engines for
 * throughput), FSDP over every trainer GPU, no sequence parallel. Parts outside the layout (engine placement,
 * workers.trainer_ranks) are the caller's to name.
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
  const both: ParallelSpec["roles"][] = par.roles === "split" ? ["split", "colocated"] : ["colocated", "split"];
  const roles = both.filter((r) => r === "split" || input.colocatedBuilt);
  return roles.flatMap((r) => tps.map((tp) => ({ ...par, roles: r, tensorParallel: tp, rolloutGpus: r === "split" ? tp : 0, fsdp: 0, sequenceParallel: 1 })));
}
