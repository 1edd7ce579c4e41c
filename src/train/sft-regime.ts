// The SFT regime (`task: sft`): a student is fine-tuned on a teacher's trajectories. The trajectories are
// filtered as PromptCoT 2.0 does (a final \boxed{} answer for math or a code block for code, and a length
// cap), chat-templated and tokenized by the worker's own tokenizer (Tokenize RPC), and trained with the
// loss on completion tokens only (the worker's SFT loss masks the prompt). Each iteration is one journaled
// update (train.epochs passes; src/train/sft.ts: a trainer restart abandons the pass and redoes it), and
// the held-out set is evaluated before and after, as in self-play.
//
// Packing: the worker's batch builder pads each row to the batch's longest; it does not pack several
// examples into one row. True packing needs per-example position ids and a block-diagonal attention mask
// inside the worker, or examples attend to each other. Here batches are length-grouped instead: examples
// of similar length share a step, so padding stays small and there is no cross-contamination.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ConfigError } from "../config/errors.js";
import type { Experiment } from "../config/schema.js";
import type { RunContext } from "../experiment/context.js";
import { iterTag, shuffled, unitSeed } from "../experiment/ids.js";
import { evaluateStage, type EvalSummary } from "../eval/heldout.js";
import type { ChatMessage, TrainExample } from "../rpc/gen/promptcot_worker.js";
import type { IterationResult } from "../selfplay/loop.js";
import { Progress } from "../telemetry/progress.js";
import { findAnswer } from "../verify/math/extract.js";
import { afterThinking } from "../verify/think.js";
import { applyRetention } from "./retention.js";
import { optimizerHyper, totalStepsOf } from "./schedule.js";
import { sftUpdate } from "./sft.js";
import { syncWeights } from "./weight-sync.js";
import { workersLine } from "../cluster/process-placement.js";

const TOKENIZE_BATCH = 32;
const TOKENIZE_DEADLINE_MS = 10 * 60 * 1000;

export interface Trajectory {
  id: string;
  /** The conversation up to the assistant's reply. */
  messages: ChatMessage[];
  completion: string;
}

export interface SftData {
  trajectories: Trajectory[];
  sha256: string;
  path: string;
}

export type DropReason = "empty_completion" | "no_boxed_answer" | "no_code_block" | "too_long";

interface TokenizedRecord {
  kept: boolean;
  reason?: DropReason;
  prompt_token_ids: number[];
  completion_token_ids: number[];
}

/** Reads sft.trajectories_path; any bad row is a ConfigError naming file:line and the fix. */
export function readSftData(cfg: Experiment, configDir: string): SftData {
  if (!cfg.sft.trajectories_path) {
    throw new ConfigError("task sft needs a JSONL of trajectories", undefined, undefined, "sft.trajectories_path");
  }
  const path = resolve(configDir, cfg.sft.trajectories_path);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError(`cannot read ${path}: ${(e as Error).message}`, undefined, undefined, "sft.trajectories_path");
  }
  const system = cfg.sft.system_prompt && cfg.data.system_prompt ? [{ role: "system", content: cfg.data.system_prompt }] : [];
  const trajectories: Trajectory[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    trajectories.push({ id: `r${String(trajectories.length).padStart(5, "0")}`, ...parseRow(line, path, i + 1, system) });
  });
  if (trajectories.length === 0) throw new ConfigError(`${path} has no trajectories`, path, undefined, "sft.trajectories_path");
  return { trajectories, sha256: createHash("sha256").update(text).digest("hex"), path };
}

function parseRow(line: string, file: string, lineNo: number, system: ChatMessage[]): Omit<Trajectory, "id"> {
  const bad = (why: string) =>
    new ConfigError(`${why}; each row is {"prompt": "...", "completion": "..."} or {"messages": [..., {"role": "assistant", "content": "..."}]}`, file, lineNo);
  let row: unknown;
  try {
    row = JSON.parse(line);
  } catch {
    throw bad("not valid JSON");
  }
  const r = row as { prompt?: unknown; completion?: unknown; messages?: unknown };
  if (typeof r.prompt === "string" && typeof r.completion === "string") {
    return { messages: [...system, { role: "user", content: r.prompt }], completion: r.completion };
  }
  if (Array.isArray(r.messages)) {
    const msgs = r.messages as { role?: unknown; content?: unknown }[];
    if (msgs.some((m) => typeof m?.role !== "string" || typeof m?.content !== "string")) throw bad("every message needs a string role and content");
    const last = msgs.at(-1);
    if (!last || last.role !== "assistant" || msgs.length < 2) throw bad("messages must end with the assistant's reply after at least one other turn");
    return { messages: msgs.slice(0, -1) as ChatMessage[], completion: last.content as string };
  }
  throw bad("neither prompt + completion strings nor a messages array");
}

/** Why a trajectory's text is not kept (PromptCoT 2.0's SFT filter), or undefined when it is. */
export function textFilter(completion: string, domain: "math" | "code"): DropReason | undefined {
  if (completion.trim() === "") return "empty_completion";
  if (domain === "math") return findAnswer(completion, { afterThink: true })?.how === "boxed" ? undefined : "no_boxed_answer";
  const answer = afterThinking(completion) ?? "";
  return /```[\w+-]*[ \t]*\n[\s\S]*?\S[\s\S]*?\n[ \t]*```/.test(answer) ? undefined : "no_code_block";
}

/**
 * One epoch's step batches, length-grouped: a seeded shuffle cut into windows of `window` batches, each
 * window sorted by length and cut into batches, the batches then shuffled. Every id appears exactly once.
 */
export function lengthGroupedBatches(ids: readonly string[], lengthOf: (id: string) => number, batchSize: number, seed: number, window = 16): string[][] {
  const order = shuffled(ids, seed);
  const batches: string[][] = [];
  const span = batchSize * window;
  for (let w = 0; w < order.length; w += span) {
    const chunk = order.slice(w, w + span).sort((a, b) => lengthOf(a) - lengthOf(b));
    for (let i = 0; i < chunk.length; i += batchSize) batches.push(chunk.slice(i, i + batchSize));
  }
  return shuffled(batches, seed + 1);
}

function batchesFor(ctx: RunContext, ids: string[], lengths: Map<string, number>, iteration: number): string[][] {
  const t = ctx.cfg.train;
  const out: string[][] = [];
  for (let e = 0; e < t.epochs; e++) {
    const seed = unitSeed(ctx.cfg.seed, "sft-shuffle", iteration, e);
    if (ctx.cfg.sft.batching === "length_grouped") out.push(...lengthGroupedBatches(ids, (id) => lengths.get(id)!, t.batch_size, seed));
    else {
      const order = shuffled(ids, seed);
      for (let i = 0; i < order.length; i += t.batch_size) out.push(order.slice(i, i + t.batch_size));
    }
  }
  return out;
}

const unitOf = (id: string) => `sft/data/${id}`;

/** Filters and tokenizes the trajectories (one journal unit each, so a resume tokenizes only the rest). */
async function prepareStage(ctx: RunContext, data: SftData): Promise<Map<string, number>> {
  const todo = data.trajectories.filter((t) => !ctx.journal.has(unitOf(t.id)));
  const progress = new Progress("SFT data (filter + tokenize)", todo.length);
  for (let i = 0; i < todo.length; i += TOKENIZE_BATCH) {
    const batch = todo.slice(i, i + TOKENIZE_BATCH);
    const verdicts = new Map(batch.map((t) => [t.id, textFilter(t.completion, ctx.cfg.sft.domain)]));
    const items = batch.filter((t) => !verdicts.get(t.id)).map((t) => ({ id: t.id, messages: t.messages, completion: t.completion, appendEos: true }));
    const req = { items, chatTemplateKwargsJson: JSON.stringify(ctx.cfg.model.chat_template_kwargs) };
    const res = items.length ? await ctx.pool.run(0, (rpc) => rpc.tokenize(req, TOKENIZE_DEADLINE_MS)) : { items: [] };
    const tokens = new Map(res.items.map((r) => [r.id, r]));
    ctx.journal.record(batch.map((t) => ({ id: unitOf(t.id), stage: "sft-data", iteration: 0, result: recordOf(ctx, verdicts.get(t.id), tokens.get(t.id)) })));
    progress.tick(batch.length);
  }
  progress.finish();
  return keptLengths(ctx, data);
}

function recordOf(ctx: RunContext, reason: DropReason | undefined, tok: { promptTokenIds: number[]; completionTokenIds: number[] } | undefined): TokenizedRecord {
  if (reason || !tok) return { kept: false, reason: reason ?? "empty_completion", prompt_token_ids: [], completion_token_ids: [] };
  if (tok.completionTokenIds.length > ctx.cfg.sft.max_completion_tokens) return { kept: false, reason: "too_long", prompt_token_ids: [], completion_token_ids: [] };
  return { kept: true, prompt_token_ids: tok.promptTokenIds, completion_token_ids: tok.completionTokenIds };
}

/** Kept trajectories' total token counts; logs and records the filter's counts by reason. */
function keptLengths(ctx: RunContext, data: SftData): Map<string, number> {
  const lengths = new Map<string, number>();
  const dropped: Record<string, number> = {};
  for (const t of data.trajectories) {
    const r = ctx.journal.get<TokenizedRecord>(unitOf(t.id))!;
    if (r.kept) lengths.set(t.id, r.prompt_token_ids.length + r.completion_token_ids.length);
    else dropped[r.reason!] = (dropped[r.reason!] ?? 0) + 1;
  }
  ctx.log(`SFT data: ${lengths.size} of ${data.trajectories.length} trajectories kept; dropped ${JSON.stringify(dropped)}`);
  ctx.metrics.write({ kind: "sft_filter", trajectories: data.trajectories.length, kept: lengths.size, ...Object.fromEntries(Object.entries(dropped).map(([k, v]) => [`dropped_${k}`, v])) });
  if (lengths.size === 0) throw new ConfigError(`no trajectory of ${data.path} passed the filter (${JSON.stringify(dropped)})`, data.path, undefined, "sft");
  return lengths;
}

/** A resume on other trajectories would train on a mix; refused, as run.json refuses other problems. */
function checkData(ctx: RunContext, data: SftData): void {
  const seen = ctx.journal.getMeta("sft.trajectories_sha256");
  if (seen === undefined) ctx.journal.setMeta("sft.trajectories_sha256", data.sha256);
  else if (seen !== data.sha256) {
    throw new ConfigError(`${data.path} changed since this run started (sha256 ${seen.slice(0, 12)} -> ${data.sha256.slice(0, 12)}); restore it or start a new run (another --run-dir)`, data.path, undefined, "sft.trajectories_path");
  }
}

function loader(ctx: RunContext): (ids: string[]) => Promise<TrainExample[]> {
  return async (ids) =>
    ids.map((id) => {
      const r = ctx.journal.get<TokenizedRecord>(unitOf(id))!;
      return {
        promptTokenIds: r.prompt_token_ids, completionTokenIds: r.completion_token_ids, chosenTokenIds: [], rejectedTokenIds: [],
        refChosenLogp: 0, refRejectedLogp: 0, advantage: 0, weight: 1, oldLogprobs: [], refLogprobs: [],
      };
    });
}

/** The SFT run: eval before, then per iteration one update (train.epochs passes), sync, eval when due. */
export async function sftRegime(ctx: RunContext, data: SftData): Promise<{ before: EvalSummary; iterations: IterationResult[] }> {
  const { cfg, timer } = ctx;
  checkData(ctx, data);
  if (cfg.data.few_shot.length > 0) ctx.log(`note: the held-out eval shows data.few_shot (${cfg.data.few_shot.length} turns) that the trajectories lack; set data.few_shot: [] so eval prompts match training`);
  const lengths = await timer.time("sft data", () => prepareStage(ctx, data));
  const ids = [...lengths.keys()];
  const stepsPerIteration = Math.ceil((ids.length * cfg.train.epochs) / cfg.train.batch_size);
  const total = totalStepsOf(cfg, cfg.iterations * stepsPerIteration);
  const before = await timer.time("evaluate", () => evaluateStage(ctx, 0));
  const iterations: IterationResult[] = [];
  for (let it = 1; it <= cfg.iterations; it++) {
    const batches = batchesFor(ctx, ids, lengths, it);
    const update = await timer.time("train", () =>
      sftUpdate({
        journal: ctx.journal, pool: ctx.pool, metrics: ctx.metrics, log: ctx.log, unit: { id: `${iterTag(it)}/update`, stage: "update", iteration: it },
        exampleIds: ids, load: loader(ctx), hyper: cfg.train, seed: unitSeed(cfg.seed, "sft", it), checkpointDir: join(ctx.runDir, "checkpoints"),
        label: `SFT ${it}/${cfg.iterations}`, batches, hyperAt: (step) => optimizerHyper(cfg, step, total), resumeEverySteps: cfg.train.resume_every_steps,
      }),
    );
    await timer.time("sync", () => syncWeights(ctx, it));
    const due = it === cfg.iterations || (cfg.eval_every > 0 && it % cfg.eval_every === 0);
    const evalNow = due ? await timer.time("evaluate", () => evaluateStage(ctx, it)) : undefined;
    applyRetention(ctx);
    iterations.push({ iteration: it, samples: 0, pairs: 0, steps: update.steps.length, eval: evalNow });
  }
  return { before, iterations };
}

/** The dry-run plan of an SFT run (the number of kept trajectories is known only after filtering). */
export function sftPlanText(cfg: Experiment, runDir: string): string {
  const t = cfg.train;
  const he = cfg.data.heldout_size * cfg.eval.samples_per_prompt;
  const s = t.lr_schedule;
  return [
    `run directory: ${runDir}`,
    workersLine(cfg),
    `data: ${cfg.sft.trajectories_path} → filter (${cfg.sft.domain === "math" ? "a \\boxed{} answer" : "a code block"}, ≤${cfg.sft.max_completion_tokens} completion tokens) → tokenize with the chat template`,
    `eval before training: ${cfg.data.heldout_size} held-out problems × ${cfg.eval.samples_per_prompt} samples = ${he} generations`,
    ...Array.from({ length: cfg.iterations }, (_, i) =>
      `iteration ${i + 1}: SFT ${t.epochs} pass(es), ${cfg.sft.batching} batches of ${t.batch_size} (lr ${t.learning_rate}, ${s.kind}${s.warmup_steps ? `, warm-up ${s.warmup_steps}` : ""}) → checkpoint → sync` +
        (i + 1 === cfg.iterations || (cfg.eval_every > 0 && (i + 1) % cfg.eval_every === 0) ? ` → eval (${he} generations)` : ""),
    ),
  ].join("\n");
}
