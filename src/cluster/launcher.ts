// The seam between the pool and where workers run: local child processes (local-launcher.ts) or Ray
// actors (ray-launcher.ts). The pool only starts, restarts and stops workers and talks gRPC to them.
import type { Experiment } from "../config/schema.js";
import type { WorkerRpc } from "../rpc/worker-client.js";
import { LocalWorker, type WorkerSpec } from "./local-launcher.js";
import { RayLauncher } from "./ray-launcher.js";

export interface PoolWorker {
  readonly id: string;
  /** Connected once `start` resolved. */
  rpc: WorkerRpc | undefined;
  /** The server's process id when it runs on this machine (memory reports, tests). */
  pid: number | undefined;
  restarts: number;
  /** Global optimizer step of the weights this worker holds (maintained by the pool). */
  heldStep: number;
  /** False once the worker is known to be gone (process exited, actor lost). */
  readonly alive: boolean;
  start(checkpoint?: string): Promise<void>;
  restart(checkpoint?: string): Promise<void>;
  stop(): Promise<void>;
  /** Kills the worker now, without restarting it. */
  kill(): void;
  /** Resolves true if the worker is gone or goes within `ms` (an RPC error may beat the news). */
  exitedWithin(ms: number): Promise<boolean>;
  /** The last lines of its log, for error messages. */
  tail(): string;
}

export interface WorkerLauncher {
  create(id: string, spec: WorkerSpec): PoolWorker;
  /** Called after every worker's stop(): releases what the launcher holds (a Ray job). */
  close(): Promise<void>;
}

export const localLauncher: WorkerLauncher = {
  create: (id, spec) => new LocalWorker(id, spec),
  close: async () => {},
};

/** The launcher for the experiment's `cluster:` block; `sharedDir` is the default for cluster.ray.shared_dir. */
export function launcherFor(cluster: Experiment["cluster"], sharedDir: string): WorkerLauncher {
  return cluster.type === "ray" ? new RayLauncher(cluster.address, cluster.ray, cluster.ray.shared_dir ?? sharedDir) : localLauncher;
}
