// Generation and tokenization through a role's pool, for the synthesis stages. Prompts are raw text (the
// paper's models are base models); each prompt's samples are requested whole with derived seeds, so a
// rerun after a worker restart produces the same samples, and the caller's journal skips finished ones.
import type { WorkerPool } from "../cluster/pool.js";
import type { Journal } from "../experiment/journal.js";
import { plainSampling, type EngineSample } from "../rollout/engine.js";
import { RoleEngine } from "../rollout/role-engine.js";
import { poolChunks } from "../rollout/worker-engine.js";
import type { TrainExample } from "../rpc/gen/promptcot_worker.js";

const DEADLINE_MS = 60 * 60 * 1000;

export interface Sampling {
  temperature: number;
  top_p: number;
  max_tokens: number;
  prompts_per_request: number;
}

export interface GenItem {
  id: string;
  text: string;
  seeds: number[];
}

/**
 * Generates every sample of `items` on a role's workers or its managed engine (RoleEngine); `onItem` gets an item's samples (by index) once all have arrived.
 * `isDone` skips items already journaled (also on a rerun after a restart). Every request is logged as a
 * journal event ("synth_generate"), which is how tests see that a resumed run redoes only unfinished units.
 */
export async function generateEach(
  from: WorkerPool | RoleEngine,
  journal: Journal,
  stage: string,
  items: GenItem[],
  s: Sampling,
  isDone: (item: GenItem) => boolean,
  onItem: (item: GenItem, samples: EngineSample[]) => Promise<void>,
): Promise<void> {
  const prompt = (t: GenItem) => ({ id: t.id, messages: [], text: t.text, seeds: t.seeds });
  if (from instanceof RoleEngine) {
    const todo = items.filter((it) => !isDone(it));
    if (todo.length === 0) return;
    journal.event("synth_generate", { stage, ids: todo.map((t) => t.id), engine: from.name });
    const byId = new Map(todo.map((t) => [t.id, t]));
    return from.each(todo.map(prompt), plainSampling(s), (p, samples) => onItem(byId.get(p.id)!, samples));
  }
  await poolChunks(from, items, s.prompts_per_request, async (engine, chunk) => {
    const todo = chunk.filter((it) => !isDone(it));
    if (todo.length === 0) return;
    journal.event("synth_generate", { stage, ids: todo.map((t) => t.id) });
    const got = new Map(todo.map((t) => [t.id, [] as EngineSample[]]));
    const byId = new Map(todo.map((t) => [t.id, t]));
    for await (const r of engine.generate(todo.map(prompt), plainSampling(s))) {
      const item = byId.get(r.promptId);
      const list = got.get(r.promptId);
      if (!item || !list) throw new Error(`worker answered for unknown prompt '${r.promptId}'`);
      list[r.position] = r;
      if (list.filter(Boolean).length === item.seeds.length) await onItem(item, list);
    }
  }, { timeoutMs: DEADLINE_MS });
}

export interface TokenizeInput {
  id: string;
  text: string;
  /** Target parts, each tokenized on its own and concatenated (see templates.promptTargetParts). */
  parts: string[];
  appendEos: boolean;
}

export interface Tokenized {
  prompt: number[];
  /** Token ids of each part; the EOS, when asked, ends the last part. */
  parts: number[][];
}

/** Tokenizes prompt + target parts on the pool's worker 0 (tokenizers are the same across a role's workers). */
export async function tokenizeParts(pool: WorkerPool, inputs: TokenizeInput[]): Promise<Map<string, Tokenized>> {
  const items = inputs.flatMap((t) =>
    t.parts.map((completion, j) => ({ id: `${t.id}#${j}`, text: t.text, completion, appendEos: t.appendEos && j === t.parts.length - 1 })),
  );
  const res = await pool.run(0, (rpc) => rpc.tokenize({ items }, DEADLINE_MS));
  const byId = new Map(res.items.map((r) => [r.id, r]));
  const out = new Map<string, Tokenized>();
  for (const t of inputs) {
    const rows = t.parts.map((_, j) => byId.get(`${t.id}#${j}`));
    if (rows.some((r) => !r)) throw new Error(`Tokenize answered without item ${t.id}`);
    out.set(t.id, { prompt: rows[0]!.promptTokenIds, parts: rows.map((r) => r!.completionTokenIds) });
  }
  return out;
}

/** SFT examples: loss on the target tokens only (the worker masks the prompt). */
export async function sftExamples(pool: WorkerPool, inputs: Omit<TokenizeInput, "appendEos">[]): Promise<TrainExample[]> {
  const tok = await tokenizeParts(pool, inputs.map((i) => ({ ...i, appendEos: true })));
  return inputs.map((i) => {
    const t = tok.get(i.id)!;
    return {
      promptTokenIds: t.prompt,
      completionTokenIds: t.parts.flat(),
      chosenTokenIds: [],
      rejectedTokenIds: [],
      refChosenLogp: 0,
      refRejectedLogp: 0,
      advantage: 0,
      weight: 1,
      oldLogprobs: [],
      refLogprobs: [],
    };
  });
}

/** Brings every worker of the pool to the pool's checkpoint (the trainer, worker 0, already holds it). */
export async function syncPool(pool: WorkerPool): Promise<void> {
  for (const [w, worker] of pool.workers.entries()) {
    if (worker.heldStep >= pool.checkpointStep || !pool.checkpoint) continue;
    const path = pool.checkpoint;
    await pool.run(w, (rpc) => rpc.loadCheckpoint({ path, loadOptimizer: false }, DEADLINE_MS));
    worker.heldStep = pool.checkpointStep;
  }
}
