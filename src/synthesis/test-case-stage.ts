// Test-case synthesis wired to workers: each round's prompts go through the Generate RPC, one sample
// per prompt with the round's seed (PromptCoT 2.0: one test case per round, several rounds).
import type { WorkerPool } from "../cluster/pool.js";
import type { Sampling } from "../config/schema.js";
import type { GenerateFn, GeneratedText } from "./test-cases.js";

const DEADLINE_MS = 60 * 60 * 1000;

/** A GenerateFn that spreads prompts over the pool's workers (restarting crashed ones, redoing their share). */
export function workerGenerate(pool: WorkerPool, sampling: Pick<Sampling, "temperature" | "top_p" | "max_tokens" | "prompts_per_request">): GenerateFn {
  return async (prompts) => {
    const chunks: (typeof prompts)[] = [];
    for (let i = 0; i < prompts.length; i += sampling.prompts_per_request) chunks.push(prompts.slice(i, i + sampling.prompts_per_request));
    const out: GeneratedText[] = [];
    let next = 0;
    const lane = async (w: number) => {
      for (let c = next++; c < chunks.length; c = next++) {
        const chunk = chunks[c]!;
        const got = await pool.run(w, async (rpc) => {
          const texts: GeneratedText[] = [];
          const req = {
            prompts: chunk.map((p) => ({ id: p.id, messages: p.messages, sampleSeeds: [p.seed] })),
            sampling: { temperature: sampling.temperature, topP: sampling.top_p, topK: 0, maxTokens: sampling.max_tokens, stop: [] },
          };
          for await (const r of rpc.generate(req, DEADLINE_MS)) texts.push({ id: r.promptId, text: r.text });
          return texts;
        });
        out.push(...got);
      }
    };
    await Promise.all(Array.from({ length: pool.size }, (_, w) => lane(w)));
    return out;
  };
}
