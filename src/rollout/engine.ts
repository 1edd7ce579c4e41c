// The rollout-engine seam: every generation (rollouts, evals, teachers) goes through `RolloutEngine`.
// Two families implement it: the gRPC worker (worker-engine.ts: our own decode loop, token ids and
// per-sample seeds exactly reproducible) and OpenAI-compatible servers (openai-engine.ts: llama.cpp's
// llama-server, vLLM serve, SGLang, a hosted teacher). Callers see samples as they finish, in any order.
/** Role is a plain string: the server or the worker's chat template decides which roles it accepts. */
export interface EngineMessage {
  role: string;
  content: string;
}

export interface EngineSampling {
  temperature: number;
  top_p: number;
  /** 0 = off. */
  top_k: number;
  /** 0 = off. */
  min_p: number;
  /** 1 = off. */
  repetition_penalty: number;
  max_tokens: number;
  stop: string[];
}

export interface EnginePrompt {
  id: string;
  messages: EngineMessage[];
  /** The prompt as token ids, already chat-templated: sent as is (/v1/completions), `messages` is then only for logs. */
  promptTokenIds?: number[];
  /** Raw prompt text, no chat template (base models): sent as is (/v1/completions); `messages` is then empty. */
  text?: string;
  /** One seed per wanted sample; a sample is named by its position in this list. */
  seeds: number[];
}

export interface EngineSample {
  promptId: string;
  /** Position of the sample's seed in `EnginePrompt.seeds`. */
  position: number;
  text: string;
  /** "stop" | "length" (an engine's other reasons are mapped onto these two; see finishReason()). */
  finishReason: string;
  /** Completion token ids, when the engine returns them; otherwise the trainer tokenizes the text. */
  tokenIds?: number[];
  promptTokenIds?: number[];
  /** Per generated token, when asked for and returned; otherwise the trainer scores the text. */
  logprobs?: number[];
  /** Completion tokens counted by the engine (usage), for throughput accounting. */
  completionTokens: number;
  promptTokens?: number;
  promptOpensThink: boolean;
}

export interface GenerateOptions {
  /** Ask for per-token log-probs (engines that cannot return them leave `logprobs` unset). */
  logprobs?: boolean;
  /** Extra keyword arguments for the chat template ({"enable_thinking": false}). */
  chatTemplateKwargs?: Record<string, unknown>;
}

export interface RolloutEngine {
  /** For provenance and logs: "worker:<id>", "openai:http://127.0.0.1:8080/v1 (model)". */
  readonly name: string;
  /** Yields every wanted sample once as it finishes, in any order. */
  generate(prompts: EnginePrompt[], sampling: EngineSampling, opts?: GenerateOptions): AsyncIterable<EngineSample>;
}

/** Sampling by temperature, top_p and max_tokens alone (teachers, synthesis): top_k, min_p, repetition penalty and stop strings off. */
export function plainSampling(s: { temperature: number; top_p: number; max_tokens: number }): EngineSampling {
  return { temperature: s.temperature, top_p: s.top_p, top_k: 0, min_p: 0, repetition_penalty: 1, max_tokens: s.max_tokens, stop: [] };
}

/** Maps an engine's finish reason onto ours: only "length" means cut at max_tokens. */
export function finishReason(reason: string | null | undefined): string {
  return reason === "length" ? "length" : "stop";
}

/** Collects every sample of `engine.generate` (tests and benches; stages consume the stream). */
export async function generateAll(engine: RolloutEngine, prompts: EnginePrompt[], sampling: EngineSampling, opts?: GenerateOptions): Promise<EngineSample[]> {
  const out: EngineSample[] = [];
  for await (const s of engine.generate(prompts, sampling, opts)) out.push(s);
  return out;
}
