// The policy served by a rollout engine other than the workers (engine.type llama_cpp): the engine samples,
// the workers tokenize, score and train. Prompts go to the engine as the worker's own chat-templated token
// ids, so the trainer sees exactly the prompt the engine continued, and completions come back as the engine's
// sampled token ids. The engine is brought to the pool's current checkpoint lazily, before each generation:
// after an update, after a resume and after a server restart one rule holds — never sample from weights
// older than the run's latest checkpoint.
import { createHash } from "node:crypto";
import type { WorkerPool } from "../cluster/pool.js";
import type { RunContext } from "../experiment/context.js";
import type { Problem } from "../data/problems.js";
import { problemMessages } from "../data/prompt-format.js";
import type { EnginePrompt, EngineSample, RolloutEngine } from "./engine.js";

/** How long a weight sync took, in all and by phase (llama.cpp: export_s, restart_s; vLLM: pause_s, reload_s, resume_s). */
export interface SyncTiming {
  total_s: number;
  phases: Record<string, number>;
}

export interface SyncableEngine extends RolloutEngine {
  /** Serves the checkpoint's weights from the next generate on. */
  syncWeights(checkpointDir: string, label: string): Promise<SyncTiming>;
  /** Serves the base model it started on again. */
  serveBase(): Promise<unknown>;
  /** False when a server process of the engine has died (it must be recovered before it samples). */
  alive?(): boolean;
  /** Restarts dead servers and brings them back to the weights the engine serves. */
  recover?(log: (m: string) => void): Promise<void>;
  close(): Promise<void>;
}

const TOKENIZE_DEADLINE_MS = 10 * 60 * 1000;

export class PolicyEngine {
  /** The checkpoint the engine serves (undefined = the base model it started on). A path, not a step: two
   *  pools (a run and its twin, proposer.twin) share the engine and have checkpoints at the same steps. */
  private served: string | undefined;
  private eos: number[] | undefined;

  constructor(readonly engine: SyncableEngine) {}

  get name(): string {
    return this.engine.name;
  }

  /** The pool step the engine's weights belong to (journaled with each sample); 0 = the base model. */
  servedStep(ctx: RunContext): number {
    return this.served === undefined ? 0 : ctx.pool.checkpointStep;
  }

  /** The engine, serving the pool's current checkpoint (synced first when it serves other weights). */
  current(ctx: RunContext): Promise<RolloutEngine> {
    return this.currentFor(ctx.pool, ctx);
  }

  /** The engine, serving `pool`'s current checkpoint: the policy's pool, or another trained role's (the proposer's prompt model). */
  async currentFor(pool: WorkerPool, ctx: Pick<RunContext, "metrics" | "log"> & Partial<Pick<RunContext, "timer">>): Promise<RolloutEngine> {
    if (this.engine.alive?.() === false) await this.engine.recover!(ctx.log);
    if (pool.checkpoint === this.served) return this.engine;
    if (!pool.checkpoint) {
      await this.engine.serveBase();
      this.served = undefined;
      ctx.log(`${this.engine.name}: serving the base model again`);
    } else {
      // the label names the GGUF file: a twin's checkpoint at the same step must not overwrite the served one
      const label = `step-${pool.checkpointStep}-${createHash("sha256").update(pool.checkpoint).digest("hex").slice(0, 8)}`;
      // timed as "sync" wherever it happens (lazily, inside the next generate or evaluate stage)
      const sync = () => this.engine.syncWeights(pool.checkpoint!, label);
      const t = ctx.timer ? await ctx.timer.time("sync", sync) : await sync();
      this.served = pool.checkpoint;
      ctx.metrics.write({ kind: "sync", reason: "engine", engine: this.engine.name, seconds: t.total_s, ...t.phases, weights_version: pool.checkpointStep });
      const phases = Object.entries(t.phases).map(([k, v]) => `${k.replace(/_s$/, "")} ${v.toFixed(1)} s`).join(" + ");
      ctx.log(`${this.engine.name}: serving step ${pool.checkpointStep} in ${t.total_s.toFixed(1)} s (${phases})`);
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
   * the model's EOS when the sample stopped on it, as the worker's own samples do (llama-server returns the
   * end-of-generation token among its ids; a server that leaves it out gets the model's EOS appended).
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
