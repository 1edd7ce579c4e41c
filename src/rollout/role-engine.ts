// A role other than the policy sampled on managed engines: the proposer's prompt model (trained, so its
// engine follows the role pool's checkpoints exactly as the policy's engine follows the policy pool) or a
// teacher (frozen: it serves its base weights). The role's worker pool still tokenizes, scores and trains.
import type { WorkerPool } from "../cluster/pool.js";
import type { RunContext } from "../experiment/context.js";
import type { EnginePrompt, EngineSample, EngineSampling, GenerateOptions } from "./engine.js";
import type { PolicyEngine } from "./policy-engine.js";

/** A server that dies mid-generation is restarted and its unfinished prompts asked for again, this many times at most. */
const RECOVERIES = 2;

export class RoleEngine {
  constructor(
    readonly synced: PolicyEngine,
    /** The pool whose checkpoint the engine must serve before it samples. */
    readonly pool: WorkerPool,
    private readonly ctx: Pick<RunContext, "metrics" | "log">,
  ) {}

  get name(): string {
    return this.synced.name;
  }

  /**
   * Every sample of `prompts`; a prompt's samples reach `onPrompt` together once all have arrived. After an
   * engine death the dead server is restarted (and reloaded) and only prompts not yet handed over are redone.
   */
  async each(prompts: EnginePrompt[], sampling: EngineSampling, onPrompt: (p: EnginePrompt, samples: EngineSample[]) => Promise<void>, opts?: GenerateOptions): Promise<void> {
    const done = new Set<string>();
    for (let attempt = 0; ; attempt++) {
      const todo = prompts.filter((p) => !done.has(p.id));
      if (todo.length === 0) return;
      try {
        const engine = await this.synced.currentFor(this.pool, this.ctx);
        const byId = new Map(todo.map((p) => [p.id, p]));
        const got = new Map(todo.map((p) => [p.id, [] as EngineSample[]]));
        for await (const r of engine.generate(todo, sampling, opts)) {
          const p = byId.get(r.promptId);
          const list = got.get(r.promptId);
          if (!p || !list) throw new Error(`${engine.name} answered for unknown prompt '${r.promptId}'`);
          list[r.position] = r;
          if (list.filter(Boolean).length === p.seeds.length) {
            await onPrompt(p, list);
            done.add(p.id);
          }
        }
        return;
      } catch (e) {
        if (this.synced.engine.alive?.() !== false || attempt >= RECOVERIES) throw e;
        this.ctx.log(`${this.name} died while generating (${(e as Error).message.split("\n")[0]}); restarting it`);
        this.ctx.metrics.write({ kind: "engine_restart", stage: "role", engine: this.name });
      }
    }
  }

  close(): Promise<void> {
    return this.synced.close();
  }
}
