// The gRPC worker as a RolloutEngine: one Generate stream per call. Retries, restarts and weight-version
// checks stay with the pool (pool.run + withCurrentWeights); this only speaks the request and response.
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
    prompts: prompts.map((p) => ({ id: p.id, messages: p.messages, sampleSeeds: p.seeds })),
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
