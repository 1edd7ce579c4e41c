// The policy served by a rollout engine other than the workers (engine.type llama_cpp): the engine samples,
// the workers tokenize, score and train. Prompts go to the engine as the worker's own chat-templated token
// ids, so the trainer sees exactly the prompt the engine continued, and completions come back as the engine's
// sampled token ids. The engine is brought to the pool's current checkpoint lazily, before each generation:
// after an update, after a resume and after a server restart one rule holds — never sample from weights
// older than the run's latest checkpoint.
import type { RunContext } from "../experiment/context.js";
import type { Problem } from "../data/problems.js";
import { problemMessages } from "../data/prompt-format.js";
import type { EnginePrompt, EngineSample, RolloutEngine } from "./engine.js";
import type { SyncTiming } from "./llama-cpp.js";

export interface SyncableEngine extends RolloutEngine {
  /** Serves the checkpoint's weights from the next generate on. */
  syncWeights(checkpointDir: string, label: string): Promise<SyncTiming>;
  close(): Promise<void>;
}

const TOKENIZE_DEADLINE_MS = 10 * 60 * 1000;

export class PolicyEngine {
  /** Global step of the weights the engine serves (0 = the base model it started on). */
  private servedStep = 0;
  private eos: number[] | undefined;

  constructor(readonly engine: SyncableEngine) {}

  get name(): string {
    return this.engine.name;
  }

  /** The engine, serving the pool's current checkpoint (synced first when it serves older weights). */
  async current(ctx: RunContext): Promise<RolloutEngine> {
    const { pool } = ctx;
    if (pool.checkpoint && pool.checkpointStep !== this.servedStep) {
      const t = await this.engine.syncWeights(pool.checkpoint, `step-${pool.checkpointStep}`);
      this.servedStep = pool.checkpointStep;
      ctx.metrics.write({
        kind: "sync", reason: "engine", engine: this.engine.name, seconds: t.total_s, export_s: t.export_s,
        restart_s: t.restart_s, weights_version: pool.checkpointStep,
      });
      ctx.log(`${this.engine.name}: serving step ${pool.checkpointStep} (export ${t.export_s.toFixed(1)} s + restart ${t.restart_s.toFixed(1)} s)`);
    }
    return this.engine;
  }

  /** Engine prompts carrying the worker's chat-templated prompt token ids (one Tokenize call per chunk). */
  async prompts(ctx: RunContext, problems: Problem[], seeds: (p: Problem) => number[]): Promise<{ prompts: EnginePrompt[]; opensThink: Map<string, boolean> }> {
    const items = problems.map((p) => ({ id: p.id, messages: problemMessages(p, ctx.cfg.data) }));
    const req = { items, chatTemplateKwargsJson: JSON.stringify(ctx.cfg.model.chat_template_kwargs ?? {}) };
    const res = await ctx.pool.run(0, (rpc) => rpc.tokenize(req, TOKENIZE_DEADLINE_MS));
    const byId = new Map(res.items.map((t) => [t.id, t]));
    const opensThink = new Map<string, boolean>();
    const prompts = items.map((it, i) => {
      const t = byId.get(it.id);
      if (!t) throw new Error(`worker tokenized no prompt for '${it.id}'`);
      opensThink.set(it.id, t.promptOpensThink);
      return { ...it, promptTokenIds: t.promptTokenIds, seeds: seeds(problems[i]!) };
    });
    return { prompts, opensThink };
  }

  /**
   * The sample's completion token ids as the trainer must see them: the engine's sampled ids, ending with
   * the model's EOS when the sample stopped on it (llama-server leaves the end-of-generation token out),
   * as the worker's own samples do.
   */
  async completionIds(ctx: RunContext, s: EngineSample): Promise<number[]> {
    if (!s.tokenIds || s.tokenIds.length === 0) throw new Error(`${this.engine.name} returned no token ids for ${s.promptId}#${s.position}; the policy engine must return them (llama.cpp: logprobs)`);
    const eos = await this.eosIds(ctx);
    if (s.finishReason !== "stop" || eos.length === 0) return s.tokenIds;
    const last = s.tokenIds[s.tokenIds.length - 1];
    return last !== undefined && eos.includes(last) ? s.tokenIds : [...s.tokenIds, Math.min(...eos)];
  }

  private async eosIds(ctx: RunContext): Promise<number[]> {
    this.eos ??= (await ctx.pool.run(0, (rpc) => rpc.info())).eosTokenIds;
    return this.eos;
  }

  close(): Promise<void> {
    return this.engine.close();
  }
}
