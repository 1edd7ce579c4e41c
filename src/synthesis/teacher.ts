// The teacher behind references and test validation: anything that turns chat messages into sampled
// texts with given seeds. The worker pool is one implementation; an OpenAI-compatible endpoint (vLLM
// serve, a hosted model) is another that only has to satisfy `Generator` — nothing downstream knows which.
import type { WorkerPool } from "../cluster/pool.js";
import type { ChatMessage } from "./test-cases.js";

export interface TeacherSampling {
  temperature: number;
  top_p: number;
  max_tokens: number;
  /** Prompts sent together in one request. */
  prompts_per_request: number;
}

export interface GenRequest {
  id: string;
  messages: ChatMessage[];
  /** The samples still wanted: their index (a journal key) and seed (so a redo draws the same text). */
  samples: { index: number; seed: number }[];
}

export interface GenSample {
  id: string;
  index: number;
  text: string;
  finishReason: string;
  promptOpensThink: boolean;
}

export interface Generator {
  /** What produced the samples, for provenance ("worker:qwen3-4b", "openai:https://..."). */
  readonly name: string;
  /** Delivers every wanted sample to `onSample` as it arrives (in any order; a redo may repeat one). */
  generate(requests: GenRequest[], sampling: TeacherSampling, onSample: (s: GenSample) => Promise<void> | void): Promise<void>;
}

const DEADLINE_MS = 60 * 60 * 1000;

/** A Generator over a worker pool: requests are spread over the workers; a crashed worker's share is redone. */
export function workerGenerator(pool: WorkerPool, name: string): Generator {
  return {
    name: `worker:${name}`,
    async generate(requests, s, onSample) {
      const chunks: GenRequest[][] = [];
      for (let i = 0; i < requests.length; i += s.prompts_per_request) chunks.push(requests.slice(i, i + s.prompts_per_request));
      let next = 0;
      const lane = async (w: number) => {
        for (let c = next++; c < chunks.length; c = next++) {
          const chunk = chunks[c]!.filter((r) => r.samples.length > 0);
          if (chunk.length === 0) continue;
          const byId = new Map(chunk.map((r) => [r.id, r]));
          await pool.run(w, async (rpc) => {
            const req = {
              prompts: chunk.map((r) => ({ id: r.id, messages: r.messages, sampleSeeds: r.samples.map((x) => x.seed) })),
              sampling: { temperature: s.temperature, topP: s.top_p, topK: 0, maxTokens: s.max_tokens, stop: [] },
            };
            for await (const r of rpc.generate(req, DEADLINE_MS)) {
              // the worker numbers answers by position in sampleSeeds; map back to the sample's own index
              const slot = byId.get(r.promptId)?.samples[r.sampleIndex];
              if (!slot) throw new Error(`teacher answered for unknown sample ${r.promptId}#${r.sampleIndex}`);
              await onSample({ id: r.promptId, index: slot.index, text: r.text, finishReason: r.finishReason, promptOpensThink: r.promptOpensThink });
            }
          });
        }
      };
      await Promise.all(Array.from({ length: pool.size }, (_, w) => lane(w)));
    },
  };
}
