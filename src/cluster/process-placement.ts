// Which process of a run sits on which GPU, as the launchers will place them, and the layouts that would share
// a GPU or start without one. Checked before anything starts (`run`, `run --dry-run`, `plan`: exit 2 naming the
// key); shown by `plan`. The rules mirror the launchers: local-launcher.ts gives trainer rank r --device-index
// offset + r and rollout worker i --device-index offset + i + trainer_ranks - 1, and the worker takes
// cuda:(index mod #GPUs) for model.device auto/cuda (all on N for cuda:N); on Ray each worker is an actor holding
// cluster.ray.gpus_per_worker. Managed vLLM servers (engine.type vllm without base_url): on one host, the first
// GPUs, CUDA_VISIBLE_DEVICES of their own, and `offset` is their count (rollout/vllm-placement.ts); on Ray, an
// actor each in a bundle of its own (rollout/vllm-ray.ts).
import { ConfigError } from "../config/errors.js";
import type { Experiment } from "../config/schema.js";
import { engineGpuSlices, workerDeviceOffset } from "../rollout/vllm-placement.js";

export interface ProcessSlot {
  process: string;
  /** "cuda:3", "cpu", "cuda:(5 mod #GPUs)" where the machine's GPU count is not in the config, or Ray's share. */
  device: string;
}

export interface PlacementProblem {
  key: string;
  message: string;
}

type Cfg = Pick<Experiment, "model" | "workers" | "cluster" | "engine">;

/** The model asks for a GPU: cuda or cuda:N, or auto on a cluster that says it has GPUs. */
function wantsGpu(cfg: Cfg): boolean {
  const d = cfg.model.device;
  return d.startsWith("cuda") || (d === "auto" && cfg.cluster.gpus_per_node > 0);
}

/** Every worker process with the device index the local launcher gives it (trainer ranks first). */
function processes(cfg: Cfg): { process: string; index: number }[] {
  const ranks = cfg.workers.trainer_ranks;
  const out = ranks > 1
    ? Array.from({ length: ranks }, (_, r) => ({ process: `trainer rank ${r} (worker 0)`, index: r }))
    : [{ process: "trainer (worker 0)", index: 0 }];
  for (let i = 1; i < cfg.workers.count; i++) out.push({ process: `rollout worker ${i}`, index: i + ranks - 1 });
  return out;
}

const managedVllm = (cfg: Cfg): boolean => cfg.engine.type === "vllm" && !cfg.engine.base_url;
const nodeGpus = (cfg: Cfg): string[] => Array.from({ length: cfg.cluster.gpus_per_node }, (_, i) => String(i));
const shows = (cfg: Cfg): string => `cluster.gpus_per_node is ${cfg.cluster.gpus_per_node}`;

/** Where each managed vLLM server goes: its Ray bundle, or its GPUs on this host. */
function vllmSlots(cfg: Cfg): ProcessSlot[] {
  if (!managedVllm(cfg)) return [];
  const { engines, tensor_parallel_size: tp } = cfg.engine.vllm;
  const c = cfg.cluster;
  if (c.type === "ray") {
    const gpu = c.ray.gpus_per_worker > 0 || c.gpus_per_node > 0;
    const bundle = gpu ? `{CPU: ${c.ray.cpus_per_worker}, GPU: ${tp}}` : `{CPU: ${c.ray.cpus_per_worker}}`;
    const device = gpu ? `bundle ${bundle}: ${tp} GPU(s) of one node, chosen by Ray, bound to that node's address` : `bundle ${bundle}: no GPU (CPU build), bound to its node's address`;
    return Array.from({ length: engines }, (_, i) => ({ process: `vLLM server ${i}, Ray actor`, device }));
  }
  let slices: string[] | undefined;
  try {
    slices = engineGpuSlices(cfg, nodeGpus(cfg), undefined, shows(cfg));
  } catch {
    slices = undefined; // placementProblems names it
  }
  return Array.from({ length: engines }, (_, i) => ({
    process: `vLLM server ${i}`,
    device: c.gpus_per_node === 0 ? `CUDA_VISIBLE_DEVICES: the host's ${tp === 1 ? `GPU ${i}` : `GPUs ${i * tp}-${(i + 1) * tp - 1}`} by position, the workers' after them (none on a CPU host: the CPU build)`
      : slices ? `CUDA_VISIBLE_DEVICES=${slices[i]}` : "no GPU left (engine.vllm.engines)",
  }));
}

export function processSlots(cfg: Cfg): ProcessSlot[] {
  return [...workerSlots(cfg), ...vllmSlots(cfg)];
}

function workerSlots(cfg: Cfg): ProcessSlot[] {
  const d = cfg.model.device;
  const gpus = cfg.cluster.gpus_per_node;
  const offset = workerDeviceOffset(cfg, Math.max(gpus, 1)); // the label assumes GPUs where their count is not stated
  return processes(cfg).map(({ process, index: own }) => {
    const index = own + offset;
    if (cfg.cluster.type === "ray") {
      const g = cfg.cluster.ray.gpus_per_worker;
      return { process: `${process}, Ray actor`, device: g > 0 ? `${g} GPU(s) of its own, chosen by Ray` : "no GPU (cluster.ray.gpus_per_worker 0)" };
    }
    if (d === "cpu") return { process, device: "cpu" };
    if (d === "auto" && gpus === 0) return { process, device: `cuda:(${index} mod #GPUs) if the machine has GPUs, else cpu` };
    if (d.startsWith("cuda:")) return { process, device: d };
    return { process, device: gpus > 0 ? `cuda:${index % gpus}` : `cuda:(${index} mod #GPUs)` };
  });
}

/** Layouts that would share a GPU without being asked to, or start GPU work without a GPU. */
export function placementProblems(cfg: Cfg): PlacementProblem[] {
  if (managedVllm(cfg) && cfg.cluster.type === "local" && cfg.cluster.gpus_per_node > 0) {
    try {
      engineGpuSlices(cfg, nodeGpus(cfg), undefined, shows(cfg));
    } catch (e) {
      return [{ key: "engine.vllm.engines", message: (e as Error).message }];
    }
  }
  if (!wantsGpu(cfg)) return [];
  if (cfg.cluster.type === "ray") {
    if (cfg.cluster.ray.gpus_per_worker > 0) return [];
    return [{
      key: "cluster.ray.gpus_per_worker",
      message: `is 0, so every worker actor gets no GPU (Ray hides them) and fails at start with model.device ${cfg.model.device}; ` +
        `set cluster.ray.gpus_per_worker: 1 (one GPU per worker), or model.device: cpu`,
    }];
  }
  const gpus = cfg.cluster.gpus_per_node;
  if (cfg.model.device.startsWith("cuda:") || gpus === 0) return []; // asked for one GPU; or the count is not stated
  const slots = processes(cfg);
  if (slots.length <= gpus) return [];
  const ranks = cfg.workers.trainer_ranks;
  const first = slots.find((s) => s.index >= gpus)!;
  return [{
    key: "workers.count",
    message: `${cfg.workers.count} worker(s) with ${ranks} trainer rank(s) need ${slots.length} GPUs but cluster.gpus_per_node is ${gpus}: ` +
      `${first.process} would land on cuda:${first.index % gpus}, which ${slots[first.index % gpus]!.process} holds; ` +
      `set workers.count to at most ${Math.max(1, gpus - ranks + 1)}, or fewer workers.trainer_ranks, or model.device: "cuda:N" to share GPU N on purpose`,
  }];
}

/** Throws the first problem as a config error (exit 2), naming the key and the fix. */
export function checkPlacement(cfg: Cfg, file?: string): void {
  const [p] = placementProblems(cfg);
  if (p) throw new ConfigError(p.message, file, undefined, p.key);
}

/** `plan`'s lines: each process and its device. */
export function processLines(cfg: Cfg): string[] {
  const where = cfg.cluster.type === "ray" ? "Ray actors" : "local processes";
  return [`processes (${where}, model.device ${cfg.model.device}):`, ...processSlots(cfg).map((s) => `  ${s.process}: ${s.device}`)];
}

/** The dry-run plan's line for the workers: how many, local processes or Ray actors, and the trainer's ranks. */
export function workersLine(cfg: Cfg): string {
  const [kind, kinds] = cfg.cluster.type === "ray" ? ["Ray actor", "Ray actors"] : ["local process", "local processes"];
  const ranks = cfg.workers.trainer_ranks;
  return `workers: ${cfg.workers.count} × ${kind}${ranks > 1 ? ` (the trainer, worker 0: ${ranks} FSDP ranks, ${kinds})` : ""} ` +
    `(${cfg.model.source}, ${cfg.model.dtype}, device ${cfg.model.device}, trainable layers ${cfg.model.trainable_layers || "all"})`;
}
