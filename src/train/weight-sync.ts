// Weight sync: after an update every generation worker must serve the new weights before it generates
// again. The hand-off is a checkpoint on the shared filesystem (LoadCheckpoint); the contract is only
// "worker w confirms weights_version V", so an NCCL broadcast from the trainer could replace the load.
// weights_version counts TrainSteps since the base model and a checkpoint carries it, so a checkpoint's
// version equals the run's global step; every Generate names the version it expects and a worker holding
// another refuses (FAILED_PRECONDITION) instead of sampling from the wrong policy.
import { status as GrpcStatus } from "@grpc/grpc-js";
import type { WorkerPool } from "../cluster/pool.js";
import type { RunContext } from "../experiment/context.js";
import type { WorkerRpc } from "../rpc/worker-client.js";

const LOAD_DEADLINE_MS = 60 * 60 * 1000;

/** The weights_version every Generate must find: the pool's current checkpoint step (0 = base model, not checked). */
export function expectedWeightsVersion(pool: WorkerPool): number {
  return pool.checkpointStep;
}

/** Records worker `w`'s confirmed version; a checkpoint that does not carry the step it was saved at is a bug. */
function confirm(pool: WorkerPool, w: number, version: number): void {
  if (version !== pool.checkpointStep) {
    throw new Error(
      `worker-${w} reports weights_version ${version} after loading ${pool.checkpoint}, which was saved at step ` +
        `${pool.checkpointStep}; the checkpoint and the run's journal disagree (was the checkpoint replaced?)`,
    );
  }
  pool.workers[w]!.heldStep = version;
}

async function load(pool: WorkerPool, w: number, rpc: WorkerRpc): Promise<void> {
  const res = await rpc.loadCheckpoint({ path: pool.checkpoint!, loadOptimizer: false }, LOAD_DEADLINE_MS);
  confirm(pool, w, res.weightsVersion);
}

/** Brings every worker that holds older weights to the current checkpoint (the trainer already has them). */
export async function syncWeights(ctx: RunContext, iteration: number): Promise<void> {
  const { pool } = ctx;
  if (!pool.checkpoint) return;
  const stale = pool.workers.map((w, i) => ({ w, i })).filter(({ w }) => w.heldStep < pool.checkpointStep);
  if (stale.length === 0) return;
  const t0 = performance.now();
  await Promise.all(stale.map(({ i }) => pool.run(i, (rpc) => load(pool, i, rpc))));
  const seconds = (performance.now() - t0) / 1000;
  ctx.metrics.write({ iteration, kind: "sync", reason: "update", seconds, workers: stale.length, weights_version: pool.checkpointStep });
}

/**
 * Runs a Generate-based `fn` on worker `w`; when the worker refuses for holding other weights (it missed a
 * sync), loads the current checkpoint there, confirms the version and runs `fn` once more.
 */
export async function withCurrentWeights<T>(ctx: RunContext, w: number, rpc: WorkerRpc, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if ((err as { code?: number }).code !== GrpcStatus.FAILED_PRECONDITION || !ctx.pool.checkpoint) throw err;
    ctx.log(`worker-${w} refused to generate (${(err as Error).message.split("\n")[0]}); re-syncing it`);
    const t0 = performance.now();
    await load(ctx.pool, w, rpc);
    ctx.metrics.write({ kind: "sync", reason: "refused", seconds: (performance.now() - t0) / 1000, workers: 1, weights_version: ctx.pool.checkpointStep });
    return await fn();
  }
}
