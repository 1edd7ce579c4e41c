// The gRPC worker as a RolloutEngine: one Generate stream per call. Retries, restarts and weight-version
// checks stay with the pool (pool.run + withCurrentWeights); this only speaks the request and response.
import type { WorkerPool } from "../cluster/pool.js";
import type { GenerateResponse } from "../rpc/gen/promptcot_worker.js";
import type { EnginePrompt, EngineSample, EngineSampling, GenerateOptions, RolloutEngine } from "./engine.js";

export type WorkerGenerate = (req: object, timeoutMs: number) => AsyncIterable<GenerateResponse>;

export interface WorkerEngineOptions {
  name: string;
  timeoutMs: number;
  /** The weights version the worker must hold (it refuses with FAILED_PRECONDITION otherwise). */
  expectedWeightsVersion?: number;
}

export function workerRequest(prompts: EnginePrompt[], s: EngineSampling, opts: GenerateOptions, expectedWeightsVersion?: number): object {
  return {
    prompts: prompts.map((p) => ({ id: p.id, messages: p.messages, ...(p.text === undefined ? {} : { text: p.text }), sampleSeeds: p.seeds })),
    sampling: {
      temperature: s.temperature, topP: s.top_p, topK: s.top_k, minP: s.min_p, repetitionPenalty: s.repetition_penalty,
      maxTokens: s.max_tokens, stop: s.stop,
    },
    chatTemplateKwargsJson: JSON.stringify(opts.chatTemplateKwargs ?? {}),
    returnLogprobs: opts.logprobs ?? false,
    ...(expectedWeightsVersion === undefined ? {} : { expectedWeightsVersion }),
  };
}

export function workerEngine(generate: WorkerGenerate, o: WorkerEngineOptions): RolloutEngine {
  return {
    name: `worker:${o.name}`,
    async *generate(prompts, sampling, opts = {}) {
      const req = workerRequest(prompts, sampling, opts, o.expectedWeightsVersion);
      for await (const r of generate(req, o.timeoutMs)) yield fromWorker(r);
    },
  };
}

export interface PoolChunkOptions<T> {
  timeoutMs: number;
  /** The engine's name (workerEngine prefixes "worker:"); the worker's id when unset. */
  name?: string;
  /** Narrows a chunk before its worker is called; an empty one is skipped without touching the worker. */
  pick?: (chunk: T[]) => T[];
}

/**
 * Splits `items` into chunks of `perRequest` spread over the pool's workers (one lane each); `work` gets its
 * chunk and that worker as a RolloutEngine inside pool.run, so a crashed worker is restarted and the chunk redone.
 */
export async function poolChunks<T>(
  pool: WorkerPool, items: T[], perRequest: number, work: (engine: RolloutEngine, chunk: T[]) => Promise<void>, o: PoolChunkOptions<T>,
): Promise<void> {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += perRequest) chunks.push(items.slice(i, i + perRequest));
  let next = 0;
  const lane = async (w: number) => {
    for (let c = next++; c < chunks.length; c = next++) {
      const chunk = o.pick ? o.pick(chunks[c]!) : chunks[c]!;
      if (chunk.length === 0) continue;
      const name = o.name ?? pool.workers[w]!.id;
      await pool.run(w, (rpc) => work(workerEngine(rpc.generate.bind(rpc), { name, timeoutMs: o.timeoutMs }), chunk));
    }
  };
  await Promise.all(Array.from({ length: pool.size }, (_, w) => lane(w)));
}

function fromWorker(r: GenerateResponse): EngineSample {
  return {
    promptId: r.promptId,
    position: r.sampleIndex,
    text: r.text,
    finishReason: r.finishReason,
    tokenIds: r.tokenIds,
    promptTokenIds: r.promptTokenIds,
    ...(r.logprobs.length ? { logprobs: r.logprobs } : {}),
    completionTokens: r.tokenIds.length,
    promptTokens: r.promptTokenIds.length,
    promptOpensThink: r.promptOpensThink,
  };
}
