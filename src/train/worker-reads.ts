// Token ids for the trainer's ScoreLogProbs and TrainStep: inline, or as refs to the shard records that
// hold them (docs/DATA_PLANE.md "Workers read shards"). A worker on the controller's filesystem reads the
// records itself, so a step's completions no longer pass through the controller's memory and socket.
import type { Experiment } from "../config/schema.js";
import type { RunContext } from "../experiment/context.js";
import { fieldRef } from "../experiment/payload.js";
import type { ScoreItem, ShardRef, TrainExample } from "../rpc/gen/promptcot_worker.js";
import type { SampleRecord } from "../rollout/generate-stage.js";

/** Escape hatch: `inline` sends token ids inline whatever the cluster (comparisons, a suspect filesystem). */
export const WORKER_READS_ENV = "PROMPTCOT_WORKER_READS";

/**
 * Whether the run's workers read token ids from the run directory's shards. Local workers share the
 * controller's filesystem; Ray workers only when `cluster.ray.shared_run_dir` says the run directory is
 * mounted at the same path on every node (default: inline, which works anywhere).
 */
export function workersReadShards(cluster: Experiment["cluster"], env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env[WORKER_READS_ENV];
  if (v === "inline") return false;
  if (v !== undefined && v !== "" && v !== "auto") {
    throw new Error(`${WORKER_READS_ENV}='${v}' is not a choice; use 'auto' (default: shards where the workers share the run directory) or 'inline'`);
  }
  return cluster.type === "local" || cluster.ray.shared_run_dir;
}

/**
 * Whether requests to the pool's worker `index` name shard records: the cluster shares the run directory
 * and the worker says it honours refs (a worker without a run directory, or a build older than refs, does not).
 */
export async function workerReadsShards(ctx: RunContext, index: number): Promise<boolean> {
  if (!workersReadShards(ctx.cfg.cluster)) return false;
  return (await ctx.pool.run(index, (rpc) => rpc.info())).readsShardRefs;
}

type IdField = "token_ids" | "prompt_token_ids";

/** The ids of one field, or (refs on, and the row's field is in a shard) the ref with no ids. */
function idsOrRef(s: SampleRecord, field: IdField, refs: boolean): { ids: number[]; ref?: ShardRef } {
  const ref = refs ? fieldRef(s, field) : undefined;
  return ref ? { ids: [], ref } : { ids: s[field] };
}

/** A ScoreItem for a sample's completion given its prompt. */
export function scoreItemOf(id: string, s: SampleRecord, refs: boolean): ScoreItem {
  const p = idsOrRef(s, "prompt_token_ids", refs);
  const c = idsOrRef(s, "token_ids", refs);
  return { id, promptTokenIds: p.ids, completionTokenIds: c.ids, promptRef: p.ref, completionRef: c.ref };
}

type ExampleIds = Pick<TrainExample, "promptTokenIds" | "promptRef" | "completionTokenIds" | "completionRef" | "chosenTokenIds" | "chosenRef" | "rejectedTokenIds" | "rejectedRef">;

/** A DPO example's token ids (the prompt is the chosen sample's; a pair's samples share it). */
export function pairIds(chosen: SampleRecord, rejected: SampleRecord, refs: boolean): ExampleIds {
  const p = idsOrRef(chosen, "prompt_token_ids", refs);
  const c = idsOrRef(chosen, "token_ids", refs);
  const r = idsOrRef(rejected, "token_ids", refs);
  return { promptTokenIds: p.ids, promptRef: p.ref, completionTokenIds: [], chosenTokenIds: c.ids, chosenRef: c.ref, rejectedTokenIds: r.ids, rejectedRef: r.ref };
}

/** A GRPO (or SFT-shaped) example's token ids: prompt and completion. */
export function completionIds(s: SampleRecord, refs: boolean): ExampleIds {
  const p = idsOrRef(s, "prompt_token_ids", refs);
  const c = idsOrRef(s, "token_ids", refs);
  return { promptTokenIds: p.ids, promptRef: p.ref, completionTokenIds: c.ids, completionRef: c.ref, chosenTokenIds: [], rejectedTokenIds: [] };
}

type LogprobFields = Pick<TrainExample, "oldLogprobs" | "oldLogprobsRef" | "refLogprobs" | "refLogprobsRef">;

/** GRPO's behaviour log-probs (an `old` row) and, with a KL term in the loss, the frozen reference's (a `klref` row). */
export function logprobsOf(old: { logprobs: number[] }, ref: { logprobs: number[] } | undefined, refs: boolean): LogprobFields {
  const oldRef = refs ? fieldRef(old, "logprobs") : undefined;
  const refRef = refs && ref ? fieldRef(ref, "logprobs") : undefined;
  return {
    ...(oldRef ? { oldLogprobs: [], oldLogprobsRef: oldRef } : { oldLogprobs: old.logprobs }),
    ...(refRef ? { refLogprobs: [], refLogprobsRef: refRef } : { refLogprobs: ref?.logprobs ?? [] }),
  };
}
