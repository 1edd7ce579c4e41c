// The teacher behind references and test validation: anything that turns chat messages into sampled
// texts with given seeds. Both implementations live in the rollout room (rollout/engine-generator.ts): a
// worker pool (workerGenerator) or any RolloutEngine (engineGenerator) — nothing downstream knows which.
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
