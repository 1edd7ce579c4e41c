// Workers as Ray actors: one Ray job (python-workers/promptcot_worker/ray_launcher.py) holds a placement
// group with a bundle per worker and an actor per bundle; each actor runs the ordinary worker server. The
// controller submits the job over the Jobs REST API and talks to the launcher through files in a directory
// both see at the same path (the module docstring of ray_launcher.py lists them): the launcher publishes
// each worker's address there, the controller asks for restarts there. The pool then speaks gRPC to the
// published addresses exactly as to local workers.
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, renameSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { join, resolve } from "node:path";
import type { Experiment } from "../config/schema.js";
import { HealthResponse_Status } from "../rpc/gen/promptcot_worker.js";
import { PROTO_VERSION, WorkerRpc } from "../rpc/worker-client.js";
import type { PoolWorker, WorkerLauncher } from "./launcher.js";
import { WorkerDiedError, workerArgs, workerIndex, type WorkerSpec } from "./local-launcher.js";
import { WORKER_SECRET_ENV, workerSecretEnv } from "../rpc/worker-secret.js";
import { pythonPath, WORKER_PYTHON_ENV } from "./python-env.js";
import { isTerminal, RayJobsClient, type JobDetails } from "./ray-jobs.js";

export type RaySettings = Experiment["cluster"]["ray"];

/** What the launcher publishes in workers/<id>.json. */
interface Registration {
  generation: number;
  state: "starting" | "running" | "exited" | "lost" | "failed";
  address?: string;
  pid?: number;
  actor_pid?: number;
  node_ip?: string;
  error?: string;
  exit_code?: number;
}

const POLL_MS = 200;
const STATUS_EVERY_MS = 2_000;
const live = new Set<RayJob>();

/** The server's arguments inside an actor: reachable from other nodes, and GPU 0 of the GPUs Ray gave it. */
export function rayWorkerArgs(id: string, spec: WorkerSpec, host: string): string[] {
  const args = workerArgs(id, spec, workerIndex(id));
  args[args.indexOf("--host") + 1] = host;
  args[args.indexOf("--device-index") + 1] = "0"; // Ray sets CUDA_VISIBLE_DEVICES per actor
  return args;
}

/** One submitted launcher job and its directory. */
export class RayJob {
  ended: JobDetails | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(readonly client: RayJobsClient, readonly submissionId: string, readonly dir: string) {
    live.add(this);
    this.heartbeat();
    this.timer = setInterval(() => void this.tick(), STATUS_EVERY_MS);
    this.timer.unref();
  }

  entry(id: string): Registration | undefined {
    try {
      return JSON.parse(readFileSync(join(this.dir, "workers", `${id}.json`), "utf8")) as Registration;
    } catch {
      return undefined; // not yet published
    }
  }

  request(name: string, body: object = {}): void {
    // The launcher skips dot-files, so it never acts on (or deletes) a half-written request.
    const tmp = join(this.dir, "requests", `.${name}.tmp-${process.pid}`);
    writeFileSync(tmp, JSON.stringify(body));
    renameSync(tmp, join(this.dir, "requests", name));
  }

  /** Resolves once worker `id` runs as `generation`; throws when it failed, got lost, or the job ended. */
  async awaitRunning(id: string, generation: number, timeoutMs: number): Promise<Registration> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const e = this.entry(id);
      if (e?.generation === generation && e.state === "running") return e;
      if (e?.generation === generation && e.state !== "starting") throw new WorkerDiedError(id, `${e.state} while starting on Ray: ${e.error ?? ""}`);
      if (this.ended) throw new WorkerDiedError(id, await this.endedMessage());
      if (Date.now() > until) throw new Error(`worker ${id} not running on Ray after ${timeoutMs / 1000}s (job ${this.submissionId}; logs: ${this.dir}/logs/${id}.log)`);
      await sleep(POLL_MS);
    }
  }

  async endedMessage(): Promise<string> {
    const d = this.ended!;
    let logs = "";
    try {
      logs = (await this.client.logs(this.submissionId)).trim().split("\n").slice(-20).join("\n");
    } catch {
      // the head may be gone too; the status message is what we have
    }
    return `Ray job ${this.submissionId} ended ${d.status}: ${d.message ?? ""}\n${logs}`;
  }

  private heartbeat(): void {
    const f = join(this.dir, "controller.alive");
    const now = new Date();
    if (existsSync(f)) utimesSync(f, now, now);
    else writeFileSync(f, String(process.pid));
  }

  private async tick(): Promise<void> {
    this.heartbeat();
    if (this.ended) return;
    try {
      const d = await this.client.status(this.submissionId);
      if (isTerminal(d.status)) this.ended = d;
    } catch {
      // an unreachable head is not yet a dead job: worker RPCs decide
    }
  }

  /** Asks the launcher to stop, waits for the job to end, and stops it through Ray if it does not. */
  async close(waitMs = 20_000): Promise<void> {
    clearInterval(this.timer);
    live.delete(this);
    if (this.ended) return;
    this.request("stop");
    try {
      const d = await this.client.waitTerminal(this.submissionId, waitMs);
      if (!isTerminal(d.status)) await this.client.stop(this.submissionId);
    } catch (err) {
      process.stderr.write(`[ray] could not confirm that job ${this.submissionId} stopped: ${(err as Error).message}\n`);
    }
  }
}

export class RayLauncher implements WorkerLauncher {
  readonly client: RayJobsClient;
  private readonly workers: RayWorker[] = [];
  private job: Promise<RayJob> | undefined;

  constructor(address: string, readonly settings: RaySettings, readonly sharedRoot: string) {
    this.client = new RayJobsClient(address);
  }

  create(id: string, spec: WorkerSpec): PoolWorker {
    if (((spec as { trainerRanks?: number }).trainerRanks ?? 1) > 1) {
      throw new Error("workers.trainer_ranks > 1 (a sharded trainer) is not supported on cluster.type ray yet: use cluster.type local, or one trainer rank");
    }
    const w = new RayWorker(id, spec, this);
    this.workers.push(w);
    return w;
  }

  /** The running launcher job, submitted (again, if the last one ended) for every worker created. */
  async currentJob(checkpoint: string | undefined): Promise<RayJob> {
    const job = this.job ? await this.job.catch(() => undefined) : undefined;
    if (!job || job.ended) this.job = this.submit(checkpoint);
    return this.job!;
  }

  private async submit(checkpoint: string | undefined): Promise<RayJob> {
    const spec = this.workers[0]!.spec;
    const id = `promptcot-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
    const dir = resolve(this.sharedRoot, id);
    for (const sub of ["workers", "requests", "logs"]) mkdirSync(join(dir, sub), { recursive: true });
    writeFileSync(join(dir, "spec.json"), JSON.stringify(this.launchSpec(dir, checkpoint), null, 1));
    const s = this.settings;
    const userEnv = (s.runtime_env.env_vars ?? {}) as Record<string, string>;
    if (WORKER_SECRET_ENV in userEnv) throw new Error(`cluster.ray.runtime_env.env_vars must not set ${WORKER_SECRET_ENV}: the controller makes the run's worker secret`);
    // The secret travels in the job's runtime_env (visible to whoever can use the Ray dashboard, who can
    // run code on the cluster anyway), never in spec.json or another file of the shared directory.
    const envVars = { ...workerEnv(spec), ...userEnv, ...workerSecretEnv() };
    const submissionId = await this.client.submit({
      entrypoint: `${shq(s.python ?? pythonPath())} -m promptcot_worker.ray_launcher --spec ${shq(join(dir, "spec.json"))}`,
      submission_id: id,
      runtime_env: { ...s.runtime_env, env_vars: envVars },
      metadata: { promptcot: "worker launcher", ...(spec.runDir ? { run_dir: spec.runDir } : {}) },
    });
    process.stderr.write(`[ray] submitted job ${submissionId} to ${this.client.base} (${this.workers.length} worker(s); files: ${dir})\n`);
    return new RayJob(this.client, submissionId, dir);
  }

  private launchSpec(dir: string, checkpoint: string | undefined): object {
    const s = this.settings;
    const spec = this.workers[0]!.spec;
    return {
      dir,
      checkpoint: checkpoint ?? null,
      cpus_per_worker: s.cpus_per_worker,
      gpus_per_worker: s.gpus_per_worker,
      placement_strategy: s.placement_strategy,
      startup_timeout_s: spec.startupTimeoutS,
      placement_timeout_s: spec.startupTimeoutS,
      controller_timeout_s: s.controller_timeout_s,
      workers: this.workers.map((w, bundle) => ({ id: w.id, bundle, argv: rayWorkerArgs(w.id, w.spec, s.worker_host) })),
    };
  }

  async close(): Promise<void> {
    const job = this.job ? await this.job.catch(() => undefined) : undefined;
    await job?.close();
  }
}

/** A worker served by a Ray actor. Generations count its (re)starts within one launcher job. */
class RayWorker implements PoolWorker {
  rpc: WorkerRpc | undefined;
  pid: number | undefined;
  restarts = 0;
  heldStep = 0;
  private job: RayJob | undefined;
  private generation = -1;

  constructor(readonly id: string, readonly spec: WorkerSpec, private readonly launcher: RayLauncher) {}

  get alive(): boolean {
    if (!this.job || this.job.ended) return false;
    const e = this.job.entry(this.id);
    return e?.generation === this.generation && e.state === "running";
  }

  async start(checkpoint?: string): Promise<void> {
    const job = await this.launcher.currentJob(checkpoint);
    if (job !== this.job) [this.job, this.generation] = [job, 0]; // a new job starts every worker as generation 0
    else job.request(`${this.id}.${++this.generation}.json`, { checkpoint: checkpoint ?? null });
    const e = await job.awaitRunning(this.id, this.generation, this.spec.startupTimeoutS * 1000);
    this.pid = e.node_ip && localAddresses().has(e.node_ip) ? e.pid : undefined;
    this.rpc = new WorkerRpc(e.address!);
    await this.handshake();
  }

  private async handshake(): Promise<void> {
    const info = await this.rpc!.info(30_000);
    if (info.protoVersion !== PROTO_VERSION) throw new Error(`worker ${this.id} speaks ${info.protoVersion}, controller expects ${PROTO_VERSION}`);
    const health = await this.rpc!.health(10_000);
    if (health.status !== HealthResponse_Status.READY) {
      throw new Error(`worker ${this.id} answered Health with ${HealthResponse_Status[health.status]} instead of READY: ${health.message}`);
    }
  }

  async restart(checkpoint?: string): Promise<void> {
    this.rpc?.close();
    this.restarts += 1;
    await this.start(checkpoint);
  }

  async stop(): Promise<void> {
    if (this.alive) await this.rpc?.shutdown(1_000).catch(() => undefined);
    this.rpc?.close();
  }

  kill(): void {
    this.job?.request(`${this.id}.kill`);
  }

  async exitedWithin(ms: number): Promise<boolean> {
    const until = Date.now() + ms;
    while (this.alive) {
      if (Date.now() >= until) return false;
      await sleep(POLL_MS);
    }
    return true;
  }

  tail(): string {
    return this.job ? readTail(join(this.job.dir, "logs", `${this.id}.log`)) : "";
  }
}

/** Environment of the launcher and, through Ray's runtime_env, of its actors and their servers. */
function workerEnv(spec: WorkerSpec): Record<string, string> {
  return { ...WORKER_PYTHON_ENV, ...(spec.runDir ? { PROMPTCOT_RUN_DIR: spec.runDir } : {}) };
}

function readTail(path: string, bytes = 8_192): string {
  try {
    const size = statSync(path).size;
    const fd = openSync(path, "r");
    const buf = Buffer.alloc(Math.min(bytes, size));
    readSync(fd, buf, 0, buf.length, size - buf.length);
    closeSync(fd);
    return buf.toString("utf8").split("\n").filter((l) => l.trim()).slice(-15).join("\n");
  } catch {
    return "";
  }
}

function localAddresses(): Set<string> {
  return new Set(Object.values(networkInterfaces()).flatMap((a) => (a ?? []).map((i) => i.address)));
}

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// Whatever path the controller's exit takes, ask every launcher to stop (a synchronous file write); a
// controller killed outright stops refreshing controller.alive, and the launcher stops on its own.
process.on("exit", () => {
  for (const job of live) {
    try {
      job.request("stop");
    } catch {
      // the shared directory may be gone; the heartbeat timeout still stops the job
    }
  }
});
