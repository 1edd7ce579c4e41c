// Rollout + eval throughput of the three policy engines side by side in one run, on the quickstart
// (experiments/quickstart.yaml: its model, its train/held-out problems, samples, temperatures and max tokens):
// the gRPC worker (reference), llama.cpp's llama-server and vLLM (CPU build), the last two as self-play runs
// them (prompts as the worker's chat-templated token ids for vLLM). Repeats alternate the engines so a
// shared CPU's load drifts over all; the figures are medians of the repeats: wall time of (rollout over the
// train set + eval over the held-out set), completion tokens/s, and the ratio to the worker. Also times weight
// syncs, median of the repeats: llama.cpp (checkpoint -> GGUF -> restart) and vLLM (in-place reload).
//
//   npx tsx bench/rollout-engines.ts [--repeats 3] [--parallel 16] [--threads 0] [--engines worker,llama_cpp,vllm] [--json out.json]
import { writeFileSync } from "node:fs";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { WorkerPool } from "../src/cluster/pool.js";
import { cacheDir } from "../src/cluster/python-env.js";
import { loadExperiment } from "../src/config/load.js";
import type { Experiment, Sampling } from "../src/config/schema.js";
import { arithmeticSplits, type Problem } from "../src/data/problems.js";
import { problemMessages } from "../src/data/prompt-format.js";
import { unitSeed } from "../src/experiment/ids.js";
import type { EnginePrompt, RolloutEngine } from "../src/rollout/engine.js";
import { LlamaCppEngine } from "../src/rollout/llama-cpp.js";
import { engineFromConfig, vllmEngineFromConfig } from "../src/rollout/from-config.js";
import type { VllmEngine } from "../src/rollout/vllm.js";
import { workerEngine } from "../src/rollout/worker-engine.js";

const { values: args } = parseArgs({
  options: {
    config: { type: "string", default: "experiments/quickstart.yaml" },
    repeats: { type: "string", default: "3" },
    parallel: { type: "string", default: "16" },
    engines: { type: "string", default: "worker,llama_cpp,vllm" },
    threads: { type: "string", default: "0" },
    json: { type: "string" },
    /** Fewer problems than the config's (first N of each split), for a loaded machine. */
    train: { type: "string" },
    heldout: { type: "string" },
  },
});

interface Pass { engine: string; rollout_s: number; eval_s: number; total_s: number; samples: number; tokens: number; tok_s: number }

function prompts(cfg: Experiment, problems: Problem[], s: Sampling, stage: string): EnginePrompt[] {
  return problems.map((p) => ({
    id: p.id, messages: problemMessages(p, cfg.data),
    seeds: Array.from({ length: s.samples_per_prompt }, (_, i) => unitSeed(cfg.seed, stage, 1, p.id, i)),
  }));
}

/** Runs one stage as generate-stage.ts does for its engine: the worker in chunks of prompts_per_request. */
async function stage(run: (ps: EnginePrompt[]) => Promise<{ samples: number; tokens: number }>, ps: EnginePrompt[]) {
  const t0 = performance.now();
  const r = await run(ps);
  return { ...r, s: (performance.now() - t0) / 1000 };
}

async function drain(engine: RolloutEngine, ps: EnginePrompt[], s: Sampling, kwargs: Record<string, unknown>) {
  let samples = 0;
  let tokens = 0;
  for await (const x of engine.generate(ps, s, { chatTemplateKwargs: kwargs })) {
    samples++;
    tokens += x.completionTokens;
  }
  return { samples, tokens };
}

async function pass(name: string, cfg: Experiment, split: { train: Problem[]; heldout: Problem[] }, run: (ps: EnginePrompt[], s: Sampling) => Promise<{ samples: number; tokens: number }>): Promise<Pass> {
  const ro = await stage((ps) => run(ps, cfg.rollout), prompts(cfg, split.train, cfg.rollout, "rollout"));
  const ev = await stage((ps) => run(ps, cfg.eval), prompts(cfg, split.heldout, cfg.eval, "eval"));
  const total = ro.s + ev.s;
  const tokens = ro.tokens + ev.tokens;
  return { engine: name, rollout_s: ro.s, eval_s: ev.s, total_s: total, samples: ro.samples + ev.samples, tokens, tok_s: tokens / total };
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };

async function main() {
  const { config: cfg } = loadExperiment(args.config!);
  const all = arithmeticSplits(cfg.seed, cfg.data.train_size, cfg.data.heldout_size);
  const split = { train: all.train.slice(0, Number(args.train ?? all.train.length)), heldout: all.heldout.slice(0, Number(args.heldout ?? all.heldout.length)) };
  const work = mkdtempSync(join(tmpdir(), "pcot-bench-engines-"));
  const kwargs = cfg.model.chat_template_kwargs;
  const pool = new WorkerPool(cfg.workers.count, { modelSource: cfg.model.source, dtype: cfg.model.dtype, device: "cpu", trainableLayers: 0,
    decodeWidth: cfg.model.decode_width, seed: cfg.seed, threads: cfg.workers.threads, startupTimeoutS: 600, logDir: join(work, "logs"), trains: false }, 0);
  const names = args.engines!.split(",");
  const llamaCfg = { ...cfg, engine: { ...cfg.engine, type: "llama_cpp" as const, llama_cpp: { ...cfg.engine.llama_cpp, parallel: Number(args.parallel), threads: Number(args.threads) } } };
  const vllmCfg = { ...cfg, engine: { ...cfg.engine, type: "vllm" as const } };
  let llama: LlamaCppEngine | undefined;
  let vllm: VllmEngine | undefined;
  try {
    await pool.start();
    if (names.includes("llama_cpp")) llama = (await engineFromConfig(llamaCfg, work, console.error)) as LlamaCppEngine;
    if (names.includes("vllm")) vllm = await vllmEngineFromConfig(vllmCfg, work, console.error);
    const worker = async (ps: EnginePrompt[], s: Sampling) => {
      let samples = 0;
      let tokens = 0;
      for (let i = 0; i < ps.length; i += s.prompts_per_request) {
        const chunk = ps.slice(i, i + s.prompts_per_request);
        const r = await pool.run(0, (rpc) => drain(workerEngine(rpc.generate.bind(rpc), { name: "worker-0", timeoutMs: 3_600_000 }), chunk, s, kwargs));
        samples += r.samples;
        tokens += r.tokens;
      }
      return { samples, tokens };
    };
    // vLLM as the policy engine runs it: the worker chat-templates and tokenizes, the server gets token ids
    const tokenized = async (ps: EnginePrompt[]) => {
      const res = await pool.run(0, (rpc) => rpc.tokenize({ items: ps.map((p) => ({ id: p.id, messages: p.messages })), chatTemplateKwargsJson: JSON.stringify(kwargs ?? {}) }, 600_000));
      const ids = new Map(res.items.map((t) => [t.id, t.promptTokenIds]));
      return ps.map((p) => ({ ...p, promptTokenIds: ids.get(p.id)! }));
    };
    const runs: [string, (ps: EnginePrompt[], s: Sampling) => Promise<{ samples: number; tokens: number }>][] = [];
    if (names.includes("worker")) runs.push(["worker", worker]);
    if (llama) runs.push(["llama_cpp", (ps, s) => drain(llama!, ps, s, kwargs)]);
    if (vllm) runs.push(["vllm", async (ps, s) => drain(vllm!, await tokenized(ps), s, kwargs)]);
    const passes: Pass[] = [];
    const warm = prompts(cfg, split.train.slice(0, 2), cfg.rollout, "warmup"); // page the models in
    if (llama) await drain(llama, warm, cfg.rollout, kwargs);
    if (vllm) await drain(vllm, await tokenized(warm), cfg.rollout, kwargs);
    // A sync to the base model's weights (the same work as a checkpoint of the same size) right after each of
    // the engine's passes, so each sync runs under the conditions of a pass of the same repeat.
    const base = join(cacheDir(), "models", "smollm2-135m-instruct");
    const syncs: Record<string, number[]> = { llama_cpp: [], vllm: [] };
    for (let r = 0; r < Number(args.repeats); r++) {
      for (const [name, run] of runs) {
        const p = await pass(name, cfg, split, run);
        passes.push(p);
        if (name === "llama_cpp" && llama) syncs.llama_cpp!.push((await llama.syncWeights(base, `bench-sync-${r}`)).total_s);
        if (name === "vllm" && vllm) syncs.vllm!.push((await vllm.serveBase()).total_s);
        const sync = syncs[name]?.at(-1);
        console.error(`repeat ${r + 1} ${name}: rollout ${p.rollout_s.toFixed(1)} s + eval ${p.eval_s.toFixed(1)} s, ${p.samples} samples, ${p.tokens} tokens, ${p.tok_s.toFixed(0)} tok/s${sync !== undefined ? `, sync ${sync.toFixed(2)} s` : ""}`);
      }
    }
    const med = (e: string, k: keyof Pass) => median(passes.filter((p) => p.engine === e).map((p) => p[k] as number));
    const engines = Object.fromEntries(runs.map(([e]) => [e, {
      total_s: med(e, "total_s"), rollout_s: med(e, "rollout_s"), eval_s: med(e, "eval_s"), tok_s: med(e, "tok_s"),
      ...(names.includes("worker") ? { speedup_vs_worker: med("worker", "total_s") / med(e, "total_s"), tok_s_vs_worker: med(e, "tok_s") / med("worker", "tok_s") } : {}),
      ...(syncs[e]?.length ? { sync_s_median: median(syncs[e]!), sync_s: syncs[e] } : {}),
    }]));
    const summary = {
      config: args.config, train_prompts: split.train.length, heldout_prompts: split.heldout.length, repeats: Number(args.repeats), parallel: Number(args.parallel),
      vllm: vllm ? { dtype: cfg.engine.vllm.dtype, max_concurrency: cfg.engine.max_concurrency } : undefined, engines, passes,
    };
    console.log(JSON.stringify(summary, null, 2));
    if (args.json) writeFileSync(args.json, JSON.stringify(summary, null, 2));
  } finally {
    await vllm?.close();
    await llama?.close();
    await pool.stop();
  }
}

await main();
