// A teacher (synthesis/teacher.ts `Generator`) over any RolloutEngine: a hosted model behind an
// OpenAI-compatible API, a llama.cpp server, or a worker — references and test validation do not know which.
import type { GenRequest, Generator } from "../synthesis/teacher.js";
import type { RolloutEngine } from "./engine.js";

export function engineGenerator(engine: RolloutEngine): Generator {
  return {
    name: engine.name,
    async generate(requests, s, onSample) {
      const wanted = requests.filter((r) => r.samples.length > 0);
      const byId = new Map<string, GenRequest>(wanted.map((r) => [r.id, r]));
      const prompts = wanted.map((r) => ({ id: r.id, messages: r.messages, seeds: r.samples.map((x) => x.seed) }));
      const sampling = { temperature: s.temperature, top_p: s.top_p, top_k: 0, min_p: 0, repetition_penalty: 1, max_tokens: s.max_tokens, stop: [] };
      for await (const r of engine.generate(prompts, sampling)) {
        // the engine numbers answers by position in the seeds; map back to the sample's own index
        const slot = byId.get(r.promptId)?.samples[r.position];
        if (!slot) throw new Error(`teacher ${engine.name} answered for unknown sample ${r.promptId}#${r.position}`);
        await onSample({ id: r.promptId, index: slot.index, text: r.text, finishReason: r.finishReason, promptOpensThink: r.promptOpensThink });
      }
    },
  };
}
