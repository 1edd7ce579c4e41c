// Starts worker processes on this machine, waits for their ready handshake, restarts crashed ones,
// and makes sure none outlives the controller (workers also watch their parent: PDEATHSIG).
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { execa, type ResultPromise } from "execa";
import { HealthResponse_Status } from "../rpc/gen/promptcot_worker.js";
import { WorkerRpc, PROTO_VERSION } from "../rpc/worker-client.js";
import { pythonEnv, pythonPath, REPO_ROOT } from "./python-env.js";

export interface WorkerSpec {
  modelSource: string;
  dtype: string;
  device: string;
  trainableLayers: number;
  decodeWidth: number;
  seed: number;
  threads: number;
  startupTimeoutS: number;
  logDir: string;
  /** Exported to the worker as PROMPTCOT_RUN_DIR, so its processes can be traced to a run. */
  runDir?: string;
  /** False for pools that never train (eval): no worker is the trainer, so none loads optimizer state. */
  trains?: boolean;
}

const READY_PREFIX = "PROMPTCOT_READY ";
/** The worker that trains and holds the optimizer (src/train/dpo.ts uses the same index). */
export const TRAINER_INDEX = 0;

/** A pool's worker index from its id ("worker-3" -> 3); ids without one count as the trainer. */
export function workerIndex(id: string): number {
  const m = /-(\d+)$/.exec(id);
  return m ? Number(m[1]) : TRAINER_INDEX;
}

/** The worker's command line: its index spreads workers over GPUs; only the trainer loads optimizer state. */
export function workerArgs(id: string, s: WorkerSpec, index: number, checkpoint?: string): string[] {
  const args = ["-m", "promptcot_worker.server", "--host", "127.0.0.1", "--port", "0", "--model", s.modelSource,
    "--dtype", s.dtype, "--device", s.device, "--device-index", String(index),
    "--role", index === TRAINER_INDEX && s.trains !== false ? "trainer" : "rollout", "--seed", String(s.seed), "--worker-id", id,
    "--trainable-layers", String(s.trainableLayers), "--decode-width", String(s.decodeWidth), "--threads", String(s.threads)];
  if (checkpoint) args.push("--init-checkpoint", checkpoint);
  return args;
}
const live = new Set<LocalWorker>();

export class WorkerDiedError extends Error {
  constructor(readonly workerId: string, detail: string) {
    super(`worker ${workerId} died: ${detail}`);
    this.name = "WorkerDiedError";
  }
}

export class LocalWorker {
  rpc: WorkerRpc | undefined;
  pid: number | undefined;
  restarts = 0;
  /** Global optimizer step of the weights this worker holds (maintained by the pool). */
  heldStep = 0;
  private proc: ResultPromise | undefined;
  private exited = false;
  private stderrTail: string[] = [];
  private log: WriteStream | undefined;

  constructor(readonly id: string, readonly spec: WorkerSpec, readonly index = workerIndex(id)) {}

  get alive(): boolean {
    return this.proc !== undefined && !this.exited;
  }

  /** Starts the process (from `checkpoint` when given) and resolves once it answered Info. */
  async start(checkpoint?: string): Promise<void> {
    mkdirSync(this.spec.logDir, { recursive: true });
    this.log = createWriteStream(join(this.spec.logDir, `${this.id}.log`), { flags: "a" });
    const s = this.spec;
    const args = workerArgs(this.id, s, this.index, checkpoint);
    const env = pythonEnv(s.runDir ? { PROMPTCOT_RUN_DIR: s.runDir } : {});
    this.exited = false;
    this.proc = execa(pythonPath(), args, { cwd: REPO_ROOT, env, reject: false, stdin: "ignore", cleanup: true, buffer: false });
    live.add(this);
    this.pid = this.proc.pid;
    this.proc.stderr?.on("data", (b: Buffer) => this.onStderr(b));
    void this.proc.then(() => {
      this.exited = true;
      live.delete(this);
    });
    const port = await this.awaitReady();
    this.rpc = new WorkerRpc(`127.0.0.1:${port}`);
    const info = await this.rpc.info(30_000);
    if (info.protoVersion !== PROTO_VERSION) {
      await this.stop();
      throw new Error(`worker ${this.id} speaks ${info.protoVersion}, controller expects ${PROTO_VERSION}`);
    }
    const health = await this.rpc.health(10_000);
    if (health.status !== HealthResponse_Status.READY) {
      await this.stop();
      throw new Error(`worker ${this.id} answered Health with ${HealthResponse_Status[health.status]} instead of READY: ${health.message}`);
    }
  }

  private onStderr(b: Buffer): void {
    this.log?.write(b);
    this.stderrTail.push(...b.toString("utf8").split("\n"));
    if (this.stderrTail.length > 40) this.stderrTail = this.stderrTail.slice(-40);
  }

  tail(): string {
    return this.stderrTail.filter((l) => l.trim()).slice(-15).join("\n");
  }

  private awaitReady(): Promise<number> {
    const proc = this.proc!;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        void this.stop();
        reject(new Error(`worker ${this.id} not ready after ${this.spec.startupTimeoutS}s; log: ${this.spec.logDir}/${this.id}.log`));
      }, this.spec.startupTimeoutS * 1000);
      const lines = createInterface({ input: proc.stdout! });
      lines.on("line", (line) => {
        if (!line.startsWith(READY_PREFIX)) return this.log?.write(`[stdout] ${line}\n`);
        clearTimeout(timer);
        try {
          resolve((JSON.parse(line.slice(READY_PREFIX.length)) as { port: number }).port);
        } catch {
          reject(new Error(`worker ${this.id} sent a malformed ready line: ${line}`));
        }
      });
      void proc.then((r) => {
        clearTimeout(timer);
        reject(new WorkerDiedError(this.id, `exited with ${r.exitCode ?? r.signal} before ready:\n${this.tail()}`));
      });
    });
  }

  /** Asks politely, then kills. Safe to call twice. */
  async stop(graceMs = 3_000): Promise<void> {
    const proc = this.proc;
    if (!proc || this.exited) return;
    try {
      await this.rpc?.shutdown(1_000);
    } catch {
      proc.kill("SIGTERM");
    }
    const killer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
    await proc;
    clearTimeout(killer);
    this.rpc?.close();
    this.log?.end();
  }

  /** Resolves true if the process has exited or exits within `ms` (an RPC error may beat the exit event). */
  async exitedWithin(ms: number): Promise<boolean> {
    if (!this.proc || this.exited) return true;
    const proc = this.proc;
    return Promise.race([proc.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
  }

  /** Kills immediately (used by tests and on controller exit). */
  kill(): void {
    this.proc?.kill("SIGKILL");
  }

  async restart(checkpoint?: string): Promise<void> {
    this.kill();
    await this.proc;
    this.rpc?.close();
    this.restarts += 1;
    await this.start(checkpoint);
  }
}

/** Last-resort cleanup: no worker outlives the controller, whatever path the exit takes. */
export function killAllWorkers(): void {
  for (const w of live) w.kill();
}
process.on("exit", killAllWorkers);
