// A teacher (synthesis/teacher.ts `Generator`) over any RolloutEngine: a hosted model behind an
// OpenAI-compatible API, a llama.cpp server, or a worker pool — references and test validation do not know which.
import type { WorkerPool } from "../cluster/pool.js";
import type { GenRequest, GenSample, Generator, TeacherSampling } from "../synthesis/teacher.js";
import { plainSampling, type RolloutEngine } from "./engine.js";
import { poolChunks } from "./worker-engine.js";

const DEADLINE_MS = 60 * 60 * 1000;

/** Asks `engine` for every wanted sample of `requests`; each reaches `onSample` under the sample's own index. */
export async function teacherSamples(
  engine: RolloutEngine, requests: GenRequest[], s: TeacherSampling, onSample: (s: GenSample) => Promise<void> | void,
): Promise<void> {
  const wanted = requests.filter((r) => r.samples.length > 0);
  const byId = new Map<string, GenRequest>(wanted.map((r) => [r.id, r]));
  const prompts = wanted.map((r) => ({ id: r.id, messages: r.messages, seeds: r.samples.map((x) => x.seed) }));
  for await (const r of engine.generate(prompts, plainSampling(s))) {
    // the engine numbers answers by position in the seeds; map back to the sample's own index
    const slot = byId.get(r.promptId)?.samples[r.position];
    if (!slot) throw new Error(`teacher ${engine.name} answered for unknown sample ${r.promptId}#${r.position}`);
    await onSample({ id: r.promptId, index: slot.index, text: r.text, finishReason: r.finishReason, promptOpensThink: r.promptOpensThink });
  }
}

export function engineGenerator(engine: RolloutEngine): Generator {
  return { name: engine.name, generate: (requests, s, onSample) => teacherSamples(engine, requests, s, onSample) };
}

/** A teacher over a worker pool: `prompts_per_request` requests per call, spread over the workers; a crashed worker's share is redone. */
export function workerGenerator(pool: WorkerPool, name: string): Generator {
  return {
    name: `worker:${name}`,
    generate: (requests, s, onSample) =>
      poolChunks(pool, requests, s.prompts_per_request, (engine, chunk) => teacherSamples(engine, chunk, s, onSample), {
        name, timeoutMs: DEADLINE_MS, pick: (chunk) => chunk.filter((r) => r.samples.length > 0),
      }),
  };
}
