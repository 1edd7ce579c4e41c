// Workers as Ray actors: one Ray job (python-workers/promptcot_worker/ray_launcher.py) holds a placement
// group with a bundle per worker and an actor per bundle; each actor runs the ordinary worker server. The
// controller submits the job over the Jobs REST API and talks to the launcher through files in a directory
// both see at the same path (the module docstring of ray_launcher.py lists them): the launcher publishes
// each worker's address there, the controller asks for restarts there. The pool then speaks gRPC to the
// published addresses exactly as to local workers. A sharded trainer (workers.trainer_ranks = N > 1) is N
// actors, one bundle each, possibly on N nodes; the launcher gives them the rendezvous of rank 0's node and
// the pool talks to them through one GroupRpc, as to local ranks (rank-group.ts).
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, renameSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { join, resolve } from "node:path";
import type { Experiment } from "../config/schema.js";
import { HealthResponse_Status } from "../rpc/gen/promptcot_worker.js";
import { PROTO_VERSION, WorkerRpc } from "../rpc/worker-client.js";
import type { PoolWorker, WorkerLauncher } from "./launcher.js";
import { WORKER_SECRET_ENV, workerSecretEnv } from "../rpc/worker-secret.js";
import { TRAINER_INDEX, trainerRanksOf, WorkerDiedError, workerArgs, workerIndex, type WorkerSpec } from "./local-launcher.js";
import { pythonPath, WORKER_PYTHON_ENV } from "./python-env.js";
import { GroupRpc } from "./rank-group.js";
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

/** The server's arguments inside an actor: reachable from other nodes, and GPU 0 of the GPUs Ray gave it.
 *  `id` is a rank's own id (`worker-0-rank1`) and `index` its pool worker's. */
export function rayWorkerArgs(id: string, spec: WorkerSpec, host: string, index = workerIndex(id), rank = 0): string[] {
  const args = workerArgs(id, spec, index, undefined, rank);
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
    const ranks = workerIndex(id) === TRAINER_INDEX ? trainerRanksOf(spec) : 1;
    const w = new RayWorker(id, spec, this, ranks);
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
      // one bundle per rank process: a sharded trainer's ranks may land on different nodes
      workers: this.workers
        .flatMap((w) => w.rankIds.map((id, rank) => ({ id, group: w.id, rank, world: w.rankIds.length,
          argv: rayWorkerArgs(id, w.spec, s.worker_host, workerIndex(w.id), rank) })))
        .map((r, bundle) => ({ ...r, bundle })),
    };
  }

  async close(): Promise<void> {
    const job = this.job ? await this.job.catch(() => undefined) : undefined;
    await job?.close();
  }
}

/** A worker served by a Ray actor (or, for a sharded trainer, by one actor per rank). Generations count its
 *  (re)starts within one launcher job; a group's ranks are always (re)started together, as one generation. */
class RayWorker implements PoolWorker {
  rpc: WorkerRpc | undefined;
  pid: number | undefined;
  restarts = 0;
  heldStep = 0;
  /** The launcher's ids of this worker's rank processes: its own id is rank 0's. */
  readonly rankIds: string[];
  /** Each rank's registration at the last start (node, address): tests and error messages. */
  placed: Registration[] = [];
  private job: RayJob | undefined;
  private generation = -1;

  constructor(readonly id: string, readonly spec: WorkerSpec, private readonly launcher: RayLauncher, ranks = 1) {
    this.rankIds = [id, ...Array.from({ length: ranks - 1 }, (_, i) => `${id}-rank${i + 1}`)];
  }

  get alive(): boolean {
    const job = this.job;
    if (!job || job.ended) return false;
    return this.rankIds.every((id) => {
      const e = job.entry(id);
      return e?.generation === this.generation && e.state === "running";
    });
  }

  async start(checkpoint?: string): Promise<void> {
    const job = await this.launcher.currentJob(checkpoint);
    if (job !== this.job) [this.job, this.generation] = [job, 0]; // a new job starts every worker as generation 0
    else job.request(`${this.id}.${++this.generation}.json`, { checkpoint: checkpoint ?? null });
    // All ranks at once: each announces READY only after every rank joined the process group.
    this.placed = await Promise.all(this.rankIds.map((id) => job.awaitRunning(id, this.generation, this.spec.startupTimeoutS * 1000)));
    const lead = this.placed[0]!;
    this.pid = lead.node_ip && localAddresses().has(lead.node_ip) ? lead.pid : undefined;
    const rpcs = this.placed.map((e) => new WorkerRpc(e.address!));
    await Promise.all(rpcs.map((rpc, rank) => this.handshake(rpc, this.rankIds[rank]!)));
    this.rpc = rpcs.length === 1 ? rpcs[0] : new GroupRpc(rpcs[0]!, rpcs.slice(1), () => this.kill());
  }

  private async handshake(rpc: WorkerRpc, id: string): Promise<void> {
    const info = await rpc.info(30_000);
    if (info.protoVersion !== PROTO_VERSION) throw new Error(`worker ${id} speaks ${info.protoVersion}, controller expects ${PROTO_VERSION}`);
    const health = await rpc.health(10_000);
    if (health.status !== HealthResponse_Status.READY) {
      throw new Error(`worker ${id} answered Health with ${HealthResponse_Status[health.status]} instead of READY: ${health.message}`);
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
    for (const id of this.rankIds) this.job?.request(`${id}.kill`);
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
    const job = this.job;
    if (!job) return "";
    const tails = this.rankIds.map((id) => [id, readTail(join(job.dir, "logs", `${id}.log`))]);
    return tails.length === 1 ? tails[0]![1]! : tails.map(([id, t]) => `[${id}]\n${t}`).join("\n");
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
