// A pool of workers. A failed call is first retried on the same live worker (every call is idempotent;
// TrainStep is deduplicated by step_id on the worker); a worker is restarted only when its process is gone
// or stays unresponsive past a health check. A restarted worker comes back from the controller's current
// checkpoint, so it never serves stale weights.
import { status as GrpcStatus } from "@grpc/grpc-js";
import type { Journal } from "../experiment/journal.js";
import { HealthResponse_Status } from "../rpc/gen/promptcot_worker.js";
import type { WorkerRpc } from "../rpc/worker-client.js";
import { localLauncher, type PoolWorker, type WorkerLauncher } from "./launcher.js";
import { WorkerDiedError, type WorkerSpec } from "./local-launcher.js";

export interface RestartPolicy {
  /** Restarts allowed across the pool within any `windowS` seconds (a long run may lose a few workers a day). */
  maxRestarts: number;
  windowS: number;
  /** Retries of a transient error on a live, healthy worker before it is restarted anyway. */
  retries?: number;
  /** First retry delay; it doubles on each further retry. */
  retryDelayMs?: number;
  healthTimeoutMs?: number;
  /** Injectable clock (ms) for the budget window. */
  now?: () => number;
}

export const DEFAULT_RESTART_WINDOW_S = 3600;

/** Restarts are counted in a sliding window: a crash a day ago does not use up today's budget. */
export class RestartBudget {
  private readonly times: number[] = [];

  constructor(readonly max: number, readonly windowS: number, private readonly now: () => number = Date.now) {}

  /** Takes one restart; false when `max` restarts already happened within the last `windowS` seconds. */
  take(): boolean {
    const t = this.now();
    while (this.times.length > 0 && this.times[0]! <= t - this.windowS * 1000) this.times.shift();
    if (this.times.length >= this.max) return false;
    this.times.push(t);
    return true;
  }
}

/** Thrown by `run(..., { onRestart: "abandon" })`: the worker was restarted and the call was not rerun. */
export class WorkerRestartedError extends Error {
  constructor(readonly workerId: string, readonly reason: string) {
    super(`worker ${workerId} was restarted (${reason.split("\n")[0]})`);
    this.name = "WorkerRestartedError";
  }
}

export interface RunOptions {
  /**
   * "rerun" (default): after a restart, run `fn` again — right for calls whose result does not depend on
   * state the restart lost. "abandon": throw WorkerRestartedError instead, so a caller whose earlier calls
   * built up worker state (optimizer steps) can start its whole sequence over.
   */
  onRestart?: "rerun" | "abandon";
}

type Verdict = "fatal" | "retry" | "restart";

// Codes a live worker can answer with while nothing is wrong with it: a dropped connection, a deadline
// that was too short for a slow call, a cancelled stream.
const TRANSIENT = new Set([GrpcStatus.UNAVAILABLE, GrpcStatus.DEADLINE_EXCEEDED, GrpcStatus.CANCELLED, GrpcStatus.UNKNOWN]);
// A dead worker surfaces as a transport error; the process exit event may lag it by a moment.
const EXIT_GRACE_MS = 1_000;

export class WorkerPool {
  readonly workers: PoolWorker[];
  /** The checkpoint every worker should be serving; undefined = the base model. */
  checkpoint: string | undefined;
  /** Global optimizer step of `checkpoint` (0 = base model); sync never goes backwards. */
  checkpointStep = 0;
  /** Unpublished trainer state saved inside an update (a resumable point, src/train/update-points.ts): where
   *  that worker restarts from, while the others keep `checkpoint` until the update is journaled. */
  private readonly points = new Map<PoolWorker, { checkpoint: string; step: number }>();
  private readonly budget: RestartBudget;
  private readonly policy: Required<Omit<RestartPolicy, "now">>;

  /** `restarts`: a RestartPolicy, or a plain count allowed per DEFAULT_RESTART_WINDOW_S. `launcher`: where
   *  workers run (local processes by default; launcherFor(cfg.cluster) for the experiment's choice). */
  constructor(
    count: number,
    spec: WorkerSpec,
    restarts: number | RestartPolicy,
    private readonly journal?: Journal,
    private readonly launcher: WorkerLauncher = localLauncher,
  ) {
    this.workers = Array.from({ length: count }, (_, i) => launcher.create(`worker-${i}`, spec));
    const p = typeof restarts === "number" ? { maxRestarts: restarts, windowS: DEFAULT_RESTART_WINDOW_S } : restarts;
    this.policy = { retries: 3, retryDelayMs: 500, healthTimeoutMs: 5_000, ...p };
    this.budget = new RestartBudget(p.maxRestarts, p.windowS, p.now);
  }

  get size(): number {
    return this.workers.length;
  }

  async start(checkpoint?: string, step = 0): Promise<void> {
    this.checkpoint = checkpoint;
    this.checkpointStep = step;
    this.points.clear();
    await Promise.all(this.workers.map((w) => w.start(checkpoint)));
    for (const w of this.workers) w.heldStep = step;
  }

  /** Records that worker `holder` has produced and saved newer weights; restarts will load them. */
  advance(checkpoint: string, step: number, holder: number): void {
    if (step <= this.checkpointStep) return; // a resumed run may replay an older, already-superseded update
    this.checkpoint = checkpoint;
    this.checkpointStep = step;
    this.workers[holder]!.heldStep = step;
    this.points.delete(this.workers[holder]!);
  }

  /** Records that worker `holder` holds the state saved at `checkpoint` (step `step`), newer than the pool's
   *  checkpoint and seen by no other worker: a restart of `holder` loads it, with its optimizer state. */
  holdPoint(holder: number, checkpoint: string, step: number): void {
    const w = this.workers[holder]!;
    this.points.set(w, { checkpoint, step });
    w.heldStep = step;
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()));
    await this.launcher.close();
  }

  /**
   * Runs `fn` on worker `i`. A transient error on a live, healthy worker reruns `fn` there after a backoff;
   * a dead or unresponsive worker is restarted (within the restart budget) and, unless `onRestart` is
   * "abandon", `fn` runs again. `fn` must therefore be idempotent.
   */
  async run<T>(i: number, fn: (rpc: WorkerRpc) => Promise<T>, opts: RunOptions = {}): Promise<T> {
    const w = this.workers[i]!;
    for (let retries = 0; ; ) {
      if (!w.alive) await this.restartFor(w, "not running", opts);
      try {
        return await fn(w.rpc!);
      } catch (err) {
        const verdict = await this.diagnose(err, w, retries);
        if (verdict === "fatal") throw err;
        const why = (err as Error).message;
        if (verdict === "retry") {
          this.journal?.event("worker_retry", { worker: w.id, attempt: retries + 1, reason: why.slice(0, 500) });
          await sleep(this.policy.retryDelayMs * 2 ** retries++);
          continue;
        }
        retries = 0;
        await this.restartFor(w, why, opts);
      }
    }
  }

  private async diagnose(err: unknown, w: PoolWorker, retries: number): Promise<Verdict> {
    if (err instanceof WorkerDiedError) return "restart";
    const code = (err as { code?: number }).code;
    if (code === undefined) return w.alive ? "fatal" : "restart"; // not an RPC error: the caller's own
    if (await w.exitedWithin(EXIT_GRACE_MS)) return "restart";
    if (!TRANSIENT.has(code)) return "fatal"; // the live worker's answer (bad input, its own exception)
    if (retries >= this.policy.retries) return "restart"; // alive but failing every call: unresponsive
    return (await this.healthy(w)) ? "retry" : "restart";
  }

  /** A worker that answers Health (even BUSY) is alive and reachable; DRAINING ones are on their way out. */
  private async healthy(w: PoolWorker): Promise<boolean> {
    try {
      const h = await w.rpc!.health(this.policy.healthTimeoutMs);
      return h.status !== HealthResponse_Status.DRAINING;
    } catch {
      return false;
    }
  }

  private async restartFor(w: PoolWorker, why: string, opts: RunOptions): Promise<void> {
    await this.restart(w, why);
    if (opts.onRestart === "abandon") throw new WorkerRestartedError(w.id, why);
  }

  private async restart(w: PoolWorker, why: string): Promise<void> {
    if (!this.budget.take()) {
      const { maxRestarts, windowS } = this.policy;
      throw new WorkerDiedError(
        w.id,
        `${why}; ${maxRestarts} restart(s) already within the last ${windowS} s (workers.max_restarts / ` +
          `workers.restart_window_s). Last log lines:\n${w.tail()}`,
      );
    }
    const from = this.points.get(w) ?? { checkpoint: this.checkpoint, step: this.checkpointStep };
    process.stderr.write(`[pool] ${w.id} failed (${why.split("\n")[0]}); restarting from ${from.checkpoint ?? "base model"}\n`);
    this.journal?.event("worker_restart", { worker: w.id, reason: why.slice(0, 500), checkpoint: from.checkpoint ?? null });
    await w.restart(from.checkpoint);
    w.heldStep = from.step;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The pool's restart policy from the experiment's `workers` block. */
export function restartPolicyOf(w: { max_restarts: number; restart_window_s: number }): RestartPolicy {
  return { maxRestarts: w.max_restarts, windowS: w.restart_window_s };
}
