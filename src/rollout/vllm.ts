// vLLM as a managed rollout engine: the controller starts its OpenAI-compatible server (python-workers'
// vllm_serve.py in the vLLM virtualenv that scripts/vllm-env.sh builds), health-checks it, restarts it and
// stops it. Weights follow the policy in place, without a restart: pause, reload from the checkpoint's
// safetensors (collective_rpc "reload_weights"), reset the prefix cache (its KV was computed by the old
// weights), set the weight version, resume. Every route, control routes included, needs the per-run key,
// and the server listens on loopback only.
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, openSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { REPO_ROOT } from "../cluster/python-env.js";
import type { EnginePrompt, EngineSample, EngineSampling, GenerateOptions, RolloutEngine } from "./engine.js";
import { OpenAIEngine, type OpenAIEngineOptions } from "./openai-engine.js";
import type { SyncableEngine, SyncTiming } from "./policy-engine.js";
import { exited, freePort, healthyOrStopped, spawnServer, stopProcess } from "./server-process.js";

export interface VllmServerOptions {
  /** The vLLM virtualenv's python (scripts/vllm-env.sh). */
  python: string;
  /** HF model directory the server starts on (the base model). */
  model: string;
  dtype: "auto" | "bfloat16" | "float16" | "float32";
  maxModelLen: number;
  enforceEager: boolean;
  /** --block-size; unset: the launcher's (32 on CPU, vLLM's own on GPU). */
  blockSize?: number;
  /** CPU: KV-cache GiB (VLLM_CPU_KVCACHE_SPACE); vLLM's default reserves most of the RAM. */
  kvCacheGib: number;
  /** CPU cores the engine's threads are bound to (VLLM_CPU_OMP_THREADS_BIND, e.g. "0-1"); unset = vLLM's default. */
  cores?: string;
  /** GPU only (vLLM ignores them on CPU). */
  tensorParallelSize: number;
  gpuMemoryUtilization: number;
  /** vLLM's batch-invariant kernels (VLLM_BATCH_INVARIANT=1), where the build supports them. */
  batchInvariant: boolean;
  /** engine.vllm.cpu_exclusive: vLLM's own CPU process set-up (spinning threads) instead of the shared-core one. */
  cpuExclusive?: boolean;
  seed: number;
  startupTimeoutS: number;
  logDir: string;
  /** Interface to listen on; loopback unless a cluster's private address is given. */
  host?: string;
  /** Name used in logs and log files: several servers of one run ("vllm-0", "vllm-1"). */
  name?: string;
  /** Sequences decoded together (vLLM's max_num_seqs): the requests this server gets in flight at most. */
  maxNumSeqs: number;
  /** CUDA_VISIBLE_DEVICES of this server (its own GPUs: vllm-placement.ts); unset = the controller's. */
  gpus?: string;
}

/** The server's command line (after the python): what `vllm serve` gets, through our guarded launcher. */
export function vllmServerArgs(o: VllmServerOptions, port: number): string[] {
  const args = ["-m", "promptcot_worker.vllm_serve", "--model", o.model, "--served-model-name", "policy", "--host", o.host ?? "127.0.0.1",
    "--port", String(port), "--dtype", o.dtype, "--max-model-len", String(o.maxModelLen), "--seed", String(o.seed),
    "--tensor-parallel-size", String(o.tensorParallelSize), "--gpu-memory-utilization", String(o.gpuMemoryUtilization),
    "--max-num-seqs", String(o.maxNumSeqs), "--api-server-count", "1", "--disable-log-stats"];
  if (o.enforceEager) args.push("--enforce-eager");
  if (o.blockSize) args.push("--block-size", String(o.blockSize));
  return args;
}

/** The server's environment: the key travels here, never on the command line (ps and vLLM's own arg log). */
/**
 * Server i's cores (VLLM_CPU_OMP_THREADS_BIND): `threads` each, in its own block while the machine has room;
 * 0 = the machine's cores split evenly over the servers. vLLM's own default ("auto") keeps a core back for its
 * front end, which on a 2-core machine halves decode speed (measured: 44 tok/s on one core for the quickstart).
 */
export function serverCores(i: number, threads: number, cpus: number, servers: number): string {
  const t = threads > 0 ? threads : Math.max(1, Math.floor(cpus / servers));
  const first = (i + 1) * t <= cpus ? i * t : 0;
  return `${first}-${first + t - 1}`;
}

export function vllmServerEnv(o: VllmServerOptions, apiKey: string): Record<string, string> {
  const env: Record<string, string> = {
    PYTHONPATH: join(REPO_ROOT, "python-workers"), PYTHONUNBUFFERED: "1", HF_HUB_OFFLINE: "1", TRANSFORMERS_OFFLINE: "1",
    VLLM_API_KEY: apiKey, VLLM_SERVER_DEV_MODE: "1", VLLM_CPU_KVCACHE_SPACE: String(o.kvCacheGib), VLLM_NO_USAGE_STATS: "1",
    VLLM_DO_NOT_TRACK: "1", TOKENIZERS_PARALLELISM: "false",
    // inherited by vLLM's engine-core and worker processes: tells whose they are (tests look for orphans by it)
    PROMPTCOT_ENGINE_LOGS: o.logDir,
  };
  if (o.cores) env.VLLM_CPU_OMP_THREADS_BIND = o.cores;
  if (o.gpus !== undefined) env.CUDA_VISIBLE_DEVICES = o.gpus;
  if (o.batchInvariant) env.VLLM_BATCH_INVARIANT = "1";
  // read by promptcot_worker.vllm_serve (cpu_process_args), before vLLM starts its engine process
  env.PROMPTCOT_VLLM_CPU_SHARED = o.cpuExclusive ? "0" : "1";
  return env;
}

/** The vLLM virtualenv's python (built by scripts/vllm-env.sh when `build`), or a clear error. */
export async function resolveVllmPython(build: boolean, log: (m: string) => void): Promise<string> {
  const script = join(REPO_ROOT, "scripts", "vllm-env.sh");
  if (process.env.PROMPTCOT_VLLM_PYTHON) return process.env.PROMPTCOT_VLLM_PYTHON;
  const where = (await execa("bash", [script, "--path"])).stdout.trim();
  if (existsSync(join(where, "..", "..", ".complete"))) return where;
  if (!build) throw new Error(`the vLLM environment is not built: run 'bash scripts/vllm-env.sh' (expected ${where})`);
  log("building the vLLM environment (first time on this machine: about 2 minutes)");
  const { stdout } = await execa("bash", [script], { stderr: "inherit" });
  return stdout.trim().split("\n").pop()!;
}

/** A refusal to sample from weights other than the ones asked for. */
export class StaleEngineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StaleEngineError";
  }
}

/** One vLLM server process and its control routes. */
export class VllmServer {
  private proc: ChildProcess | undefined;
  private starts = 0;
  port = 0;
  /** Per-process secret: every request carries it; a new one at every start. */
  readonly apiKey = randomBytes(24).toString("hex");

  constructor(readonly o: VllmServerOptions) {}

  get name(): string {
    return this.o.name ?? "vllm";
  }

  get origin(): string {
    return `http://${this.o.host ?? "127.0.0.1"}:${this.port}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  alive(): boolean {
    return this.proc !== undefined && !exited(this.proc);
  }

  async start(): Promise<void> {
    if (this.alive()) throw new Error(`${this.name} already running`);
    if (!existsSync(join(this.o.model, "config.json"))) throw new Error(`${this.name}: model directory '${this.o.model}' has no config.json`);
    this.port = await freePort(this.o.host);
    mkdirSync(this.o.logDir, { recursive: true });
    const logFile = join(this.o.logDir, `${this.name}-${++this.starts}.log`);
    const log = openSync(logFile, "w");
    const proc = spawnServer(this.o.python, vllmServerArgs(this.o, this.port), {
      stdio: ["ignore", log, log], env: { ...process.env, ...vllmServerEnv(this.o, this.apiKey) }, group: true,
    });
    this.proc = proc;
    await healthyOrStopped(proc, `${this.origin}/health`, this.o.startupTimeoutS, `${this.name} on ${this.o.model} (log: ${logFile})`, () => this.stop(), this.auth());
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    await stopProcess(proc, 10_000);
  }

  /** Gives back what the server held beyond its process (a Ray job: vllm-ray.ts); after every stop. */
  async release(): Promise<void> {}

  auth(): Record<string, string> {
    return { authorization: `Bearer ${this.apiKey}` };
  }

  /** Calls a control route; a non-2xx answer is an error naming the route and the server's message. */
  async control(method: "GET" | "POST", path: string, body?: object, timeoutMs = 600_000): Promise<unknown> {
    const res = await fetch(`${this.origin}${path}`, {
      method, headers: { ...this.auth(), ...(body ? { "content-type": "application/json" } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}), signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${this.name}: ${method} ${path}: HTTP ${res.status}: ${text.slice(0, 500)}`);
    return text ? JSON.parse(text) : undefined;
  }

  /**
   * Drops every cached KV block: they were computed by the weights just replaced. vLLM answers 200 with
   * `success: false` while blocks are still held (a request not yet freed); reusing them would sample the new
   * weights over the old weights' KV without a sign, so a reset that keeps failing fails the sync.
   */
  async resetPrefixCache(attempts = 20): Promise<void> {
    for (let i = 1; ; i++) {
      const res = (await this.control("POST", "/reset_prefix_cache")) as { success?: boolean } | undefined;
      if (res?.success !== false) return;
      if (i >= attempts) throw new Error(`${this.name}: /reset_prefix_cache answered success=false ${attempts} times (KV blocks still held after /pause); the old weights' cache cannot be dropped`);
      await new Promise((r) => setTimeout(r, 100 * i));
    }
  }

  async weightVersion(): Promise<string> {
    return ((await this.control("GET", "/weight_info", undefined, 30_000)) as { weight_version: string }).weight_version;
  }
}

/** The half-written-checkpoint guard: a checkpoint directory is complete once worker_meta.json is in it (written before the rename). */
function assertCompleteCheckpoint(dir: string): void {
  if (!existsSync(join(dir, "worker_meta.json")) || !existsSync(join(dir, "config.json"))) {
    throw new Error(`checkpoint ${dir} is incomplete (no worker_meta.json or config.json); an engine never loads a half-written checkpoint`);
  }
}

/**
 * A RolloutEngine over vLLM servers it owns (engine.vllm.engines of them); prompts are spread over them.
 * It samples only at the weight version it last set: every generate first asks each server for its version
 * and refuses (StaleEngineError) when one differs, e.g. a server restarted behind our back.
 */
export class VllmEngine implements SyncableEngine {
  private clients: OpenAIEngine[] = [];
  /** The version every server must report; "base" until the first sync. */
  private version = "base";
  /** The weights directory the servers hold: the base model's, or the last synced checkpoint. */
  private weights: string;

  constructor(readonly servers: VllmServer[], private readonly client: Omit<OpenAIEngineOptions, "baseUrl" | "flavor" | "apiKey" | "model">) {
    if (servers.length === 0) throw new Error("vLLM engine without servers");
    this.weights = servers[0]!.o.model;
  }

  get name(): string {
    return `vllm:${this.servers.length}x ${this.servers[0]!.o.model}`;
  }

  get weightVersion(): string {
    return this.version;
  }

  async start(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.start()));
    await Promise.all(this.servers.map((s) => s.control("POST", "/update_weight_version", { new_version: this.version })));
    this.clients = this.servers.map((s) => this.clientOf(s));
  }

  private clientOf(s: VllmServer): OpenAIEngine {
    return new OpenAIEngine({ ...this.client, maxConcurrency: s.o.maxNumSeqs, baseUrl: `${s.origin}/v1`, flavor: "vllm", apiKey: s.apiKey, model: "policy" });
  }

  alive(): boolean {
    return this.servers.every((s) => s.alive());
  }

  /** Restarts every dead server and brings it back to the weights the engine serves (before it samples again). */
  async recover(log: (m: string) => void): Promise<void> {
    for (const [i, s] of this.servers.entries()) {
      if (s.alive()) continue;
      log(`${s.name} is not running; restarting it and reloading ${this.weights} (version ${this.version})`);
      await s.stop();
      await s.start();
      if (this.weights !== s.o.model) await this.reloadOne(s, this.weights);
      await s.control("POST", "/update_weight_version", { new_version: this.version });
      this.clients[i] = this.clientOf(s);
    }
  }

  /** Refuses unless every server reports the version the engine last set. */
  async assertCurrent(): Promise<void> {
    for (const s of this.servers) {
      let v: string;
      try {
        v = await s.weightVersion();
      } catch (e) {
        throw new StaleEngineError(`${s.name} did not report its weight version (${(e as Error).message}); it is not sampled`);
      }
      if (v !== this.version) throw new StaleEngineError(`${s.name} serves weight version '${v}', not '${this.version}'; it is not sampled`);
    }
  }

  async *generate(prompts: EnginePrompt[], sampling: EngineSampling, opts?: GenerateOptions): AsyncIterable<EngineSample> {
    if (this.clients.length === 0) throw new Error("vLLM engine not started");
    await this.assertCurrent();
    const parts = this.clients.map((_, k) => prompts.filter((_, i) => i % this.clients.length === k)).map((ps, k) => ({ ps, k })).filter((x) => x.ps.length > 0);
    yield* merge(parts.map(({ ps, k }) => this.clients[k]!.generate(ps, sampling, opts)));
  }

  async syncWeights(checkpointDir: string, label: string): Promise<SyncTiming> {
    assertCompleteCheckpoint(checkpointDir);
    return this.reloadAll(checkpointDir, label);
  }

  async serveBase(): Promise<SyncTiming> {
    return this.reloadAll(this.servers[0]!.o.model, "base");
  }

  /** Pause, reload in place, reset the prefix cache, set the version, resume: on every server at once. */
  private async reloadAll(dir: string, label: string): Promise<SyncTiming> {
    const t0 = performance.now();
    this.version = `syncing:${label}`; // a failure half-way leaves a version no server reports: the engine refuses to sample
    const phases = await Promise.all(this.servers.map((s) => this.reloadOne(s, dir)));
    await Promise.all(this.servers.map((s) => s.control("POST", "/update_weight_version", { new_version: label })));
    this.version = label;
    this.weights = dir;
    const max = (k: string) => Math.max(...phases.map((p) => p[k]!));
    return { total_s: (performance.now() - t0) / 1000, phases: { pause_s: max("pause_s"), reload_s: max("reload_s"), resume_s: max("resume_s") } };
  }

  private async reloadOne(s: VllmServer, dir: string): Promise<Record<string, number>> {
    const t0 = performance.now();
    await s.control("POST", "/pause?mode=wait");
    await faultHold("vllm-sync", s.o.logDir);
    const t1 = performance.now();
    let t2 = t1;
    try {
      await s.control("POST", "/collective_rpc", { method: "reload_weights", kwargs: { weights_path: dir } });
      await s.resetPrefixCache();
      t2 = performance.now();
    } finally {
      await s.control("POST", "/resume");
    }
    return { pause_s: (t1 - t0) / 1000, reload_s: (t2 - t1) / 1000, resume_s: (performance.now() - t2) / 1000 };
  }

  async close(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.stop()));
    await Promise.all(this.servers.map((s) => s.release()));
  }
}

/**
 * Fault injection for the recovery tests (a process killed inside a step, not only between steps): with
 * PROMPTCOT_FAULT_HOLD=<point>, the controller stops at that point for good, after writing
 * <dir>/fault-<point> so the test knows when to kill it. Unset, it costs one environment lookup.
 */
async function faultHold(point: string, dir: string): Promise<void> {
  if (process.env.PROMPTCOT_FAULT_HOLD !== point) return;
  writeFileSync(join(dir, `fault-${point}`), String(process.pid));
  await new Promise(() => {}); // held until killed
}

/** Interleaves several async streams: yields each item as soon as any stream produces it. */
async function* merge<T>(streams: AsyncIterable<T>[]): AsyncIterable<T> {
  const its = streams.map((s) => s[Symbol.asyncIterator]());
  const next = (i: number) => its[i]!.next().then((r) => ({ i, r }));
  const pending = new Map(its.map((_, i) => [i, next(i)]));
  try {
    while (pending.size) {
      const { i, r } = await Promise.race(pending.values());
      if (r.done) pending.delete(i);
      else {
        pending.set(i, next(i));
        yield r.value;
      }
    }
  } finally {
    // a consumer that stops early (or a failed stream) tells the others to take no new requests
    for (const it of its) void it.return?.()?.catch(() => {});
  }
}
