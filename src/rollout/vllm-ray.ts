// Managed vLLM servers on Ray nodes (cluster.type ray): one Ray job per engine (the same launcher as the
// workers, python-workers/promptcot_worker/ray_launcher.py) holds a placement group with one bundle per
// server ({GPU: tensor_parallel_size} on a GPU cluster, CPUs on a CPU cluster) and an actor per bundle; each
// actor runs `python -m promptcot_worker.vllm_serve` on its node, bound to the node's address, and publishes
// that address. The controller then health-checks, samples, syncs and stops each server through its URL as it
// does a local one (vllm.ts); a restart is a new generation asked of the launcher, as for a Ray worker.
// The key: each server's is in the job's runtime_env (PROMPTCOT_VLLM_KEY_<i>), never in spec.json or a log;
// the actor hands its server only its own. The weights a sync names must be on a filesystem every node sees at
// the controller's path (checkpoints already are: docs/SCALING.md "Ray backend").
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { RayJob, type RaySettings } from "../cluster/ray-launcher.js";
import { RayJobsClient } from "../cluster/ray-jobs.js";
import { pythonPath, WORKER_PYTHON_ENV } from "../cluster/python-env.js";
import { VllmServer, vllmServerArgs, vllmServerEnv, type VllmServerOptions } from "./vllm.js";

const KEY_PREFIX = "PROMPTCOT_VLLM_KEY_";
const POLL_MS = 200;

/** The Ray side of one engine's servers: one launcher job, submitted at the first start, closed with the engine. */
export class RayVllmPlacement {
  readonly client: RayJobsClient;
  readonly servers: RayVllmServer[] = [];
  private job: Promise<RayJob> | undefined;

  /** `bundle`: each server's resources ({CPU: c} or {CPU: c, GPU: tp}). */
  constructor(address: string, readonly settings: RaySettings, readonly sharedRoot: string, readonly bundle: Record<string, number>) {
    this.client = new RayJobsClient(address);
  }

  add(o: VllmServerOptions): RayVllmServer {
    const s = new RayVllmServer(o, this, this.servers.length);
    this.servers.push(s);
    return s;
  }

  /** The running job (submitted again if the last one ended: every server then starts as generation 0). */
  async currentJob(): Promise<RayJob> {
    const job = this.job ? await this.job.catch(() => undefined) : undefined;
    if (!job || job.ended) this.job = this.submit();
    return this.job!;
  }

  private async submit(): Promise<RayJob> {
    const id = `promptcot-vllm-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
    const dir = resolve(this.sharedRoot, id);
    for (const sub of ["workers", "requests", "logs"]) mkdirSync(join(dir, sub), { recursive: true });
    writeFileSync(join(dir, "spec.json"), JSON.stringify(this.launchSpec(dir), null, 1));
    const s = this.settings;
    const userEnv = (s.runtime_env.env_vars ?? {}) as Record<string, string>;
    const keys = Object.fromEntries(this.servers.map((v, i) => [`${KEY_PREFIX}${i}`, v.apiKey]));
    const submissionId = await this.client.submit({
      entrypoint: `${shq(s.python ?? pythonPath())} -m promptcot_worker.ray_launcher --spec ${shq(join(dir, "spec.json"))}`,
      submission_id: id,
      runtime_env: { ...s.runtime_env, env_vars: { ...WORKER_PYTHON_ENV, ...userEnv, ...keys } },
      metadata: { promptcot: "vLLM server launcher" },
    });
    process.stderr.write(`[ray] submitted job ${submissionId} to ${this.client.base} (${this.servers.length} vLLM server(s), bundles of ${JSON.stringify(this.bundle)}; files: ${dir})\n`);
    return new RayJob(this.client, submissionId, dir);
  }

  private launchSpec(dir: string): object {
    const s = this.settings;
    const o = this.servers[0]!.o;
    return {
      dir, checkpoint: null, cpus_per_worker: s.cpus_per_worker, gpus_per_worker: 0, placement_strategy: s.placement_strategy,
      startup_timeout_s: o.startupTimeoutS, placement_timeout_s: o.startupTimeoutS, controller_timeout_s: s.controller_timeout_s,
      workers: this.servers.map((v, i) => ({
        id: v.name, bundle: i, kind: "vllm", python: v.o.python, key_env: `${KEY_PREFIX}${i}`, argv: rayVllmArgs(v.o),
        // the server's environment without its key (the actor adds it from the job's environment)
        env: Object.fromEntries(Object.entries(vllmServerEnv(v.o, "")).filter(([k]) => k !== "VLLM_API_KEY")),
        resources: this.bundle,
      })),
    };
  }

  async close(): Promise<void> {
    const job = this.job ? await this.job.catch(() => undefined) : undefined;
    this.job = undefined;
    await job?.close();
  }
}

/** One vLLM server run by a Ray actor on whichever node its bundle landed; talked to at its node's address. */
export class RayVllmServer extends VllmServer {
  private job: RayJob | undefined;
  private generation = -1;
  /** The node the server runs on at its last start. */
  nodeIp: string | undefined;

  constructor(o: VllmServerOptions, readonly placement: RayVllmPlacement, readonly index: number) {
    super(o);
  }

  override get origin(): string {
    return `http://${this.nodeIp ?? "0.0.0.0"}:${this.port}`;
  }

  override get pid(): number | undefined {
    return this.job?.entry(this.name)?.pid;
  }

  override alive(): boolean {
    const e = this.job && !this.job.ended ? this.job.entry(this.name) : undefined;
    return e?.generation === this.generation && e.state === "running";
  }

  override async start(): Promise<void> {
    if (this.alive()) throw new Error(`${this.name} already running`);
    const job = await this.placement.currentJob();
    if (job !== this.job) [this.job, this.generation] = [job, 0]; // a new job starts every server as generation 0
    else job.request(`${this.name}.${++this.generation}.json`, { checkpoint: null });
    const e = await job.awaitRunning(this.name, this.generation, this.o.startupTimeoutS * 1000);
    this.nodeIp = e.node_ip;
    this.port = Number(e.address!.split(":").pop());
    await this.awaitHealthy(job);
  }

  /** Waits for /health (with the key) while the launcher says the process runs; a failed start is stopped. */
  private async awaitHealthy(job: RayJob): Promise<void> {
    const until = Date.now() + this.o.startupTimeoutS * 1000;
    const log = join(job.dir, "logs", `${this.name}.log`);
    try {
      for (;;) {
        if (!this.alive()) throw new Error(`${this.name} on ${this.nodeIp} exited before it was healthy (log: ${log})`);
        if (Date.now() > until) throw new Error(`${this.name} on ${this.nodeIp} not healthy within ${this.o.startupTimeoutS} s (log: ${log})`);
        try {
          if ((await fetch(`${this.origin}/health`, { headers: this.auth(), signal: AbortSignal.timeout(2000) })).ok) return;
        } catch {
          // not listening yet
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Asks the launcher to kill the server's process group and waits until it has acted on the request. */
  override async stop(): Promise<void> {
    const job = this.job;
    if (!job || job.ended) return;
    const e = job.entry(this.name);
    if (e?.state !== "running" && e?.state !== "starting") return;
    job.request(`${this.name}.kill`);
    const file = join(job.dir, "requests", `${this.name}.kill`);
    const until = Date.now() + 30_000;
    while (existsSync(file) && !job.ended && Date.now() < until) await new Promise((r) => setTimeout(r, POLL_MS));
    while (this.alive() && Date.now() < until) await new Promise((r) => setTimeout(r, POLL_MS));
  }

  override async release(): Promise<void> {
    await this.placement.close();
  }
}

/** The server's arguments on a Ray node (host and port filled in by the actor). TP > 1 uses vLLM's own
 *  multiprocessing inside the bundle: the actor's environment names a Ray cluster, and vLLM would otherwise try to
 *  build its Ray executor from inside an actor (not run here: no GPUs). */
export function rayVllmArgs(o: VllmServerOptions): string[] {
  const args = vllmServerArgs(o, 0);
  return o.tensorParallelSize > 1 ? [...args, "--distributed-executor-backend", "mp"] : args;
}

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
