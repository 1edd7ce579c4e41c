// Which GPUs each managed vLLM server gets on one host (cluster.type local), in the plan's order (rollout GPUs
// first, then the trainer's: planner.ts): the servers take the host's first engines × tensor_parallel_size GPUs,
// tensor_parallel_size each, through CUDA_VISIBLE_DEVICES in their environment, and the local workers' device
// indices start after them (WorkerSpec.deviceOffset: trainer rank r and rollout worker i take
// cuda:((offset + index) mod #GPUs), index = r, or i + trainer_ranks - 1). Workers pinned with model.device
// cuda:N keep N, and the servers take the others. A host with too few GPUs for both is a config error before
// anything starts. A host without GPUs changes nothing (the CPU build).
import { spawnSync } from "node:child_process";
import { ConfigError } from "../config/errors.js";
import type { Experiment } from "../config/schema.js";

type Cfg = Pick<Experiment, "model" | "workers" | "engine"> & Partial<Pick<Experiment, "cluster">>;

/**
 * The host's GPUs as the controller sees them: CUDA_VISIBLE_DEVICES when set (its ids, or UUIDs, in order; ""
 * or "-1" hide them all), else one id per line of `nvidia-smi -L`, else none.
 */
export function hostGpuIds(env: NodeJS.ProcessEnv = process.env, probe: () => number = nvidiaSmiCount): string[] {
  const visible = env.CUDA_VISIBLE_DEVICES;
  if (visible !== undefined) {
    const ids = visible.split(",").map((s) => s.trim()).filter((s) => s !== "");
    return ids.length === 0 || ids[0] === "-1" ? [] : ids;
  }
  return Array.from({ length: probe() }, (_, i) => String(i));
}

function nvidiaSmiCount(): number {
  const r = spawnSync("nvidia-smi", ["-L"], { encoding: "utf8", timeout: 20_000 });
  if (r.status !== 0 || !r.stdout) return 0; // no driver, no tool: a CPU host
  return r.stdout.split("\n").filter((l) => l.startsWith("GPU ")).length;
}

/**
 * Where the local workers' device indices start on a host with `gpus` GPUs: after the managed vLLM servers' GPUs
 * when the workers spread over the GPUs (model.device auto or cuda), else 0.
 */
export function workerDeviceOffset(cfg: Cfg, gpus: number): number {
  const managed = cfg.engine.type === "vllm" && !cfg.engine.base_url && (cfg.cluster?.type ?? "local") === "local";
  const d = cfg.model.device;
  if (!managed || gpus === 0 || d === "cpu" || d.startsWith("cuda:")) return 0;
  return cfg.engine.vllm.engines * cfg.engine.vllm.tensor_parallel_size;
}

/** Positions in the host's GPU list that the local workers take (the launcher's device indices). */
export function workerGpuPositions(cfg: Cfg, gpus: number): number[] {
  const d = cfg.model.device;
  if (d === "cpu" || gpus === 0) return [];
  if (d.startsWith("cuda:")) return [Number(d.slice(5))];
  const processes = cfg.workers.trainer_ranks + cfg.workers.count - 1;
  const offset = workerDeviceOffset(cfg, gpus);
  return [...new Set(Array.from({ length: processes }, (_, i) => (offset + i) % gpus))];
}

/**
 * CUDA_VISIBLE_DEVICES of each of engine.vllm.engines servers: `tensor_parallel_size` of the host's GPUs each,
 * disjoint from each other and from the workers' GPUs. Undefined on a host without GPUs. Throws a ConfigError
 * when the host has too few.
 */
export function engineGpuSlices(cfg: Cfg, host: string[], file?: string, shows = `this host shows ${host.length} (CUDA_VISIBLE_DEVICES or nvidia-smi)`): string[] | undefined {
  if (host.length === 0) return undefined;
  const { engines, tensor_parallel_size: tp } = cfg.engine.vllm;
  const taken = new Set(workerGpuPositions(cfg, host.length));
  const free = host.filter((_, i) => !taken.has(i));
  if (free.length < engines * tp) {
    const d = cfg.model.device;
    const need = d === "cpu" ? 0 : d.startsWith("cuda:") ? 1 : cfg.workers.trainer_ranks + cfg.workers.count - 1;
    const who = need === 0 ? "the workers take none (model.device cpu)"
      : `the workers need ${need} (workers.trainer_ranks ${cfg.workers.trainer_ranks} + ${cfg.workers.count - 1} rollout worker(s), model.device ${d})`;
    throw new ConfigError(
      `${engines} vLLM server(s) × tensor_parallel_size ${tp} need ${engines * tp} GPU(s) of their own, but ${shows} and ${who}, ` +
        `leaving ${Math.max(0, host.length - need)}; lower engine.vllm.engines or engine.vllm.tensor_parallel_size, or workers.trainer_ranks / ` +
        "workers.count, or run on more GPUs (cluster.type: ray)",
      file, undefined, "engine.vllm.engines");
  }
  return Array.from({ length: engines }, (_, i) => free.slice(i * tp, (i + 1) * tp).join(","));
}
