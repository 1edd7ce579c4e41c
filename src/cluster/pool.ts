// A pool of workers with restart-on-crash. A restarted worker comes back from the controller's current
// checkpoint, so it never serves stale weights; the caller redoes the unit that was in flight.
import { status as GrpcStatus } from "@grpc/grpc-js";
import type { Journal } from "../experiment/journal.js";
import type { WorkerRpc } from "../rpc/worker-client.js";
import { LocalWorker, WorkerDiedError, type WorkerSpec } from "./local-launcher.js";

export class WorkerPool {
  readonly workers: LocalWorker[];
  /** The checkpoint every worker should be serving; undefined = the base model. */
  checkpoint: string | undefined;
  /** Global optimizer step of `checkpoint` (0 = base model); sync never goes backwards. */
  checkpointStep = 0;

  constructor(count: number, spec: WorkerSpec, private readonly maxRestarts: number, private readonly journal?: Journal) {
    this.workers = Array.from({ length: count }, (_, i) => new LocalWorker(`worker-${i}`, spec));
  }

  get size(): number {
    return this.workers.length;
  }

  async start(checkpoint?: string, step = 0): Promise<void> {
    this.checkpoint = checkpoint;
    this.checkpointStep = step;
    await Promise.all(this.workers.map((w) => w.start(checkpoint)));
    for (const w of this.workers) w.heldStep = step;
  }

  /** Records that worker `holder` has produced and saved newer weights; restarts will load them. */
  advance(checkpoint: string, step: number, holder: number): void {
    if (step <= this.checkpointStep) return; // a resumed run may replay an older, already-superseded update
    this.checkpoint = checkpoint;
    this.checkpointStep = step;
    this.workers[holder]!.heldStep = step;
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()));
  }

  /**
   * Runs `fn` on worker `i`. If the worker dies during the call it is restarted and `fn` runs again,
   * up to maxRestarts times in the pool's life; `fn` must therefore be idempotent.
   */
  async run<T>(i: number, fn: (rpc: WorkerRpc) => Promise<T>): Promise<T> {
    const w = this.workers[i]!;
    for (;;) {
      if (!w.alive) await this.restart(w, "not running");
      try {
        return await fn(w.rpc!);
      } catch (err) {
        if (!(await isWorkerFailure(err, w))) throw err;
        await this.restart(w, (err as Error).message);
      }
    }
  }

  private async restart(w: LocalWorker, why: string): Promise<void> {
    const total = this.workers.reduce((s, x) => s + x.restarts, 0);
    if (total >= this.maxRestarts) {
      throw new WorkerDiedError(w.id, `${why}; restart limit (${this.maxRestarts}) reached. Last log lines:\n${w.tail()}`);
    }
    process.stderr.write(`[pool] ${w.id} failed (${why.split("\n")[0]}); restarting from ${this.checkpoint ?? "base model"}\n`);
    this.journal?.event("worker_restart", { worker: w.id, reason: why.slice(0, 500), checkpoint: this.checkpoint ?? null });
    await w.restart(this.checkpoint);
    w.heldStep = this.checkpointStep;
  }
}

const TRANSPORT_CODES = new Set([GrpcStatus.UNAVAILABLE, GrpcStatus.INTERNAL, GrpcStatus.CANCELLED, GrpcStatus.UNKNOWN]);

async function isWorkerFailure(err: unknown, w: LocalWorker): Promise<boolean> {
  if (err instanceof WorkerDiedError) return true;
  const code = (err as { code?: number }).code;
  // A dead worker surfaces as a transport error; the process exit event may lag it by a moment.
  if (code !== undefined && TRANSPORT_CODES.has(code)) return (await w.exitedWithin(3_000)) || code === GrpcStatus.UNAVAILABLE;
  return !w.alive;
}
