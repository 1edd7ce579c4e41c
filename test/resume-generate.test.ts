// A worker killed in the middle of a Generate call: the pool restarts it and the call is redone asking only
// for the samples still missing (the worker numbers answers by position in sample_seeds; the controller
// maps positions back to sample indices), and the journal ends equal to an uninterrupted run's.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { WorkerPool } from "../src/cluster/pool.js";
import { ExperimentSchema } from "../src/config/schema.js";
import type { Problem } from "../src/data/problems.js";
import type { RunContext } from "../src/experiment/context.js";
import { Journal } from "../src/experiment/journal.js";
import type { GenerateRequest } from "../src/rpc/gen/promptcot_worker.js";
import { WorkerRpc } from "../src/rpc/worker-client.js";
import { generateStage, sampleSeeds, type GenerateStageOptions, type SampleRecord } from "../src/rollout/generate-stage.js";

const root = mkdtempSync(join(tmpdir(), "pcot-gen-resume-"));
const cfg = ExperimentSchema.parse({
  name: "gen-resume", seed: 5,
  model: { source: "tiny-random-llama", decode_width: 2 },
  workers: { count: 1, threads: 1, startup_timeout_s: 300, generate_timeout_s: 123 },
  data: { few_shot: [] },
  rollout: { samples_per_prompt: 4, temperature: 1, max_tokens: 64, prompts_per_request: 2 },
});
const problems: Problem[] = [0, 1, 2, 3].map((i) => ({ id: `t${i}`, prompt: `What is ${i} + ${i}?`, answer: String(2 * i), source: "test" }));
const pools: WorkerPool[] = [];
afterAll(() => Promise.all(pools.map((p) => p.stop())));

type Requests = { req: GenerateRequest; timeoutMs: number }[];

/** Runs the rollout stage into a fresh journal; `onSample` sees each sample before it is journaled. */
async function rollout(name: string, onSample: (s: SampleRecord, pool: WorkerPool) => void = () => {}) {
  const pool = new WorkerPool(1, { modelSource: cfg.model.source, dtype: "float32", device: "cpu", trainableLayers: 0,
    decodeWidth: cfg.model.decode_width, seed: cfg.seed, threads: 1, startupTimeoutS: 300, logDir: join(root, name, "logs") }, 3);
  pools.push(pool);
  await pool.start();
  const journal = new Journal(join(root, `${name}.sqlite`));
  const ctx = { cfg, journal, pool } as unknown as RunContext; // all that generateStage reads
  const requests: Requests = [];
  const original = WorkerRpc.prototype.generate;
  const spy = vi.spyOn(WorkerRpc.prototype, "generate").mockImplementation(function (this: WorkerRpc, req, timeoutMs) {
    requests.push({ req: req as GenerateRequest, timeoutMs });
    return original.call(this, req, timeoutMs);
  });
  const o: GenerateStageOptions = {
    label: name, stage: "rollout", iteration: 1, problems, sampling: cfg.rollout,
    toRows: async (_p, sample, id) => (onSample(sample, pool), [{ id, stage: "rollout", iteration: 1, result: sample }]),
  };
  try {
    await generateStage(ctx, o);
  } finally {
    spy.mockRestore();
  }
  const rows = new Map(journal.list<SampleRecord>("rollout", 1).map((r) => [r.id, JSON.stringify(r.result)]));
  journal.close();
  return { rows, requests, pool, seeds: (p: Problem) => sampleSeeds(ctx, o, p) };
}

describe("generation resumed after a worker dies mid-call", () => {
  it("requests only the missing samples' seeds and journals what an uninterrupted run does", async () => {
    const ref = await rollout("ref");
    expect(ref.rows.size).toBe(problems.length * 4);
    expect(ref.requests.every((r) => r.timeoutMs === 123_000)).toBe(true); // workers.generate_timeout_s

    const doneAtKill: number[] = [];
    const killed = await rollout("killed", (s, pool) => {
      if (s.prompt_id !== "t0" || doneAtKill.length >= 2) return;
      doneAtKill.push(s.sample);
      if (doneAtKill.length === 2) process.kill(pool.workers[0]!.pid!, "SIGKILL"); // 2 of t0's 4 samples are in
    });
    expect(killed.pool.workers[0]!.restarts).toBe(1);
    // First call: t0 and t1 whole. The redo after the kill: t0's two missing samples, t1 whole.
    expect(killed.requests[0]!.req.prompts.map((p) => p.sampleSeeds.length)).toEqual([4, 4]);
    const redo = killed.requests[1]!.req.prompts;
    expect(redo.map((p) => p.id)).toEqual(["t0", "t1"]);
    const t0Seeds = killed.seeds(problems[0]!);
    const missing = [0, 1, 2, 3].filter((i) => !doneAtKill.includes(i));
    expect(redo[0]!.sampleSeeds).toEqual(missing.map((i) => t0Seeds[i]));
    expect(redo[1]!.sampleSeeds).toEqual(killed.seeds(problems[1]!));
    expect(killed.requests).toHaveLength(3); // then t2, t3

    expect([...killed.rows.keys()]).toEqual([...ref.rows.keys()]);
    for (const [id, row] of ref.rows) expect(killed.rows.get(id), id).toBe(row);
  }, 600_000);
});
