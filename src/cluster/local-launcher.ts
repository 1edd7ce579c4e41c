// Starts worker processes on this machine, waits for their ready handshake, restarts crashed ones,
// and makes sure none outlives the controller (workers also watch their parent: PDEATHSIG).
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { execa, type ResultPromise } from "execa";
import { HealthResponse_Status } from "../rpc/gen/promptcot_worker.js";
import { WorkerRpc, PROTO_VERSION } from "../rpc/worker-client.js";
import { workerSecretEnv } from "../rpc/worker-secret.js";
import { pythonEnv, pythonPath, REPO_ROOT } from "./python-env.js";
import { RankPeers } from "./rank-group.js";

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
  /** workers.trainer_ranks: the trainer is this many FSDP rank processes (rank-group.ts); default 1. */
  trainerRanks?: number;
  /** parallel.activation_checkpointing: false starts workers with --no-gradient-checkpointing (every block's
   *  activations kept for the backward); default true, the worker's own default. */
  activationCheckpointing?: boolean;
  /** Where the device indices start: after the GPUs of managed vLLM servers on this host (rollout/vllm-placement.ts); default 0. */
  deviceOffset?: number;
}

const READY_PREFIX = "PROMPTCOT_READY ";
/** The worker that trains and holds the optimizer (src/train/dpo.ts uses the same index). */
export const TRAINER_INDEX = 0;

/** A pool's worker index from its id ("worker-3" -> 3); ids without one count as the trainer. */
export function workerIndex(id: string): number {
  const m = /-(\d+)$/.exec(id);
  return m ? Number(m[1]) : TRAINER_INDEX;
}

/** The worker's command line: its index spreads workers over GPUs (trainer rank r on device offset + r, rollout
 *  worker i after the trainer's ranks); only the trainer loads optimizer state. */
export function workerArgs(id: string, s: WorkerSpec, index: number, checkpoint?: string, rank = 0): string[] {
  const device = (s.deviceOffset ?? 0) + (index === TRAINER_INDEX ? rank : index + trainerRanksOf(s) - 1);
  const args = ["-m", "promptcot_worker.server", "--host", "127.0.0.1", "--port", "0", "--model", s.modelSource,
    "--dtype", s.dtype, "--device", s.device, "--device-index", String(device),
    "--role", index === TRAINER_INDEX && s.trains !== false ? "trainer" : "rollout", "--seed", String(s.seed), "--worker-id", id,
    "--trainable-layers", String(s.trainableLayers), "--decode-width", String(s.decodeWidth), "--threads", String(s.threads)];
  if (s.activationCheckpointing === false) args.push("--no-gradient-checkpointing");
  if (checkpoint) args.push("--init-checkpoint", checkpoint);
  return args;
}

/** How many rank processes the trainer of a pool with this spec is. */
export function trainerRanksOf(s: WorkerSpec): number {
  return s.trains === false ? 1 : Math.max(1, s.trainerRanks ?? 1);
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
  /** torch.distributed's RANK/WORLD_SIZE/MASTER_* for a rank of a sharded trainer. */
  rankEnv: Record<string, string> = {};
  /** Ranks 1..N-1 when this worker is rank 0 of a sharded trainer: started, stopped and killed with it. */
  private readonly peers: RankPeers | undefined;

  constructor(readonly id: string, readonly spec: WorkerSpec, readonly index = workerIndex(id), readonly rank = 0) {
    const ranks = trainerRanksOf(spec);
    if (index === TRAINER_INDEX && rank === 0 && ranks > 1) this.peers = new RankPeers(this, ranks);
  }

  get alive(): boolean {
    return this.proc !== undefined && !this.exited && (this.peers?.alive ?? true);
  }

  /** Starts the process (from `checkpoint` when given) and resolves once it answered Info. */
  async start(checkpoint?: string): Promise<void> {
    if (!this.peers) return this.startProcess(checkpoint);
    await this.peers.pickPort();
    this.rankEnv = this.peers.env(0);
    // All ranks at once: each announces READY only after every rank joined the process group.
    const started = await Promise.allSettled([this.startProcess(checkpoint), this.peers.start(checkpoint)]);
    const failed = started.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) {
      this.kill();
      throw failed.reason;
    }
    this.rpc = this.peers.rpc(this.rpc!);
  }

  private async startProcess(checkpoint?: string): Promise<void> {
    mkdirSync(this.spec.logDir, { recursive: true });
    this.log = createWriteStream(join(this.spec.logDir, `${this.id}.log`), { flags: "a" });
    const s = this.spec;
    const args = workerArgs(this.id, s, this.index, checkpoint, this.rank);
    const env = pythonEnv({ ...(s.runDir ? { PROMPTCOT_RUN_DIR: s.runDir } : {}), ...this.rankEnv, ...workerSecretEnv() });
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
    const own = this.stderrTail.filter((l) => l.trim()).slice(-15).join("\n");
    return this.peers ? `${own}\n${this.peers.tail()}` : own;
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
    await Promise.all([this.stopProcess(graceMs), this.peers?.stop()]);
  }

  private async stopProcess(graceMs: number): Promise<void> {
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
    if (this.peers && !this.peers.alive) return true;
    if (!this.proc || this.exited) return true;
    if (this.peers) {
      const [own, peers] = await Promise.all([this.exitedWithin0(ms), this.peers.anyExitedWithin(ms)]);
      return own || peers;
    }
    return this.exitedWithin0(ms);
  }

  private exitedWithin0(ms: number): Promise<boolean> {
    if (!this.proc || this.exited) return Promise.resolve(true);
    const proc = this.proc;
    return Promise.race([proc.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
  }

  /** Kills immediately (used by tests and on controller exit). */
  kill(): void {
    this.proc?.kill("SIGKILL");
    this.peers?.kill();
  }

  async restart(checkpoint?: string): Promise<void> {
    this.kill();
    await Promise.all([this.proc, ...(this.peers?.ranks.map((r) => r.exitedWithin(10_000)) ?? [])]);
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
