// A 2-rank FSDP trainer (gloo, CPU) driven through the real pool: every call reaches both ranks, rank 0
// answers, the group's losses equal a single-rank trainer's, and a rank killed mid-step restarts the whole
// group from the current checkpoint, after which the step is redone; inside an update with resumable points
// (DCP checkpoints), from the newest point.
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalWorker, WorkerSpec } from "../src/cluster/local-launcher.js";
import { WorkerPool, WorkerRestartedError } from "../src/cluster/pool.js";
import { Journal } from "../src/experiment/journal.js";
import { sftUpdate } from "../src/train/sft.js";
import { HealthResponse_Status, LossKind, type TrainExample } from "../src/rpc/gen/promptcot_worker.js";
import type { WorkerRpc } from "../src/rpc/worker-client.js";

const dir = mkdtempSync(join(tmpdir(), "pcot-sharded-"));
const spec = (trainerRanks: number): WorkerSpec => ({
  modelSource: "tiny-random-llama", dtype: "float32", device: "cpu", trainableLayers: 0, decodeWidth: 1, seed: 1,
  threads: 1, startupTimeoutS: 300, logDir: join(dir, `logs-${trainerRanks}`), trainerRanks,
});
const hyper = { learningRate: 1e-3, beta: 0.1, microBatchSize: 2 };
const prompt = [5, 6, 7, 8];
const pairs = [[[11, 12, 13], [21, 22]], [[14, 15], [23, 24, 25]], [[16, 17, 18, 19], [26]]] as const;

async function batch(rpc: WorkerRpc): Promise<Partial<TrainExample>[]> {
  const items = pairs.flatMap(([c, r], i) => [
    { id: `c${i}`, promptTokenIds: prompt, completionTokenIds: [...c] },
    { id: `r${i}`, promptTokenIds: prompt, completionTokenIds: [...r] },
  ]);
  const res = await rpc.score({ items }, 60_000);
  return pairs.map(([c, r], i) => ({
    promptTokenIds: prompt, chosenTokenIds: [...c], rejectedTokenIds: [...r],
    refChosenLogp: res.results[2 * i]!.sumLogprob, refRejectedLogp: res.results[2 * i + 1]!.sumLogprob,
  }));
}

async function steps(pool: WorkerPool, n: number, tag: string): Promise<number[]> {
  const examples = await pool.run(0, batch);
  const losses: number[] = [];
  for (let i = 0; i < n; i++) {
    const res = await pool.run(0, (rpc) => rpc.trainStep({ stepId: `${tag}-${i}`, loss: LossKind.DPO, examples, hyper }, 120_000));
    losses.push(res.metrics.loss!);
  }
  return losses;
}

describe("sharded trainer (2 ranks) through the pool", () => {
  const group = new WorkerPool(1, spec(2), { maxRestarts: 3, windowS: 3600, retryDelayMs: 50 });
  const single = new WorkerPool(1, spec(1), 0);
  beforeAll(() => Promise.all([group.start(), single.start()]), 300_000);
  afterAll(() => Promise.all([group.stop(), single.stop()]));

  it("trains like a single-rank trainer (DPO losses within 1e-5: only the reduction order differs)", async () => {
    const [sharded, plain] = await Promise.all([steps(group, 2, "a"), steps(single, 2, "a")]);
    expect(sharded[0]).toBeCloseTo(Math.log(2), 3);
    expect(sharded[1]).toBeLessThan(sharded[0]! - 1e-3);
    for (const [i, v] of sharded.entries()) expect(Math.abs(v - plain[i]!)).toBeLessThan(1e-5);
    const info = await group.run(0, (rpc) => rpc.info());
    expect(info.weightsVersion).toBe(2);
    expect(group.workers[0]!.restarts).toBe(0); // no call failed and was quietly rerun
  }, 180_000);

  it("generates on all ranks (rank 0 answers) and saves a sharded checkpoint (DCP shards + the ranks' HF copy)", async () => {
    const got = [];
    for await (const s of group.workers[0]!.rpc!.generate({ prompts: [{ id: "p", tokenIds: prompt, sampleSeeds: [1, 2] }], sampling: { temperature: 1, maxTokens: 4 } }, 60_000)) got.push(s);
    expect(got.map((s) => s.tokenIds.length)).toEqual([4, 4]);
    const path = join(dir, "ckpt-2");
    const saved = await group.run(0, (rpc) => rpc.saveCheckpoint({ path, includeOptimizer: true }, 120_000));
    expect(saved.bytes).toBeGreaterThan(0);
    for (const f of ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json", "dcp", "worker_meta.json"]) {
      expect(existsSync(join(path, f)), f).toBe(true);
    }
    expect(JSON.parse(readFileSync(join(path, "worker_meta.json"), "utf8")).has_optimizer).toBe(true);
    group.advance(path, 2, 0);
  }, 180_000);

  it("a rank killed mid-step restarts the whole group from the checkpoint; the step is redone", async () => {
    const examples = await group.run(0, batch);
    const leader = group.workers[0]!;
    const pid0 = leader.pid;
    const rank1 = (leader as unknown as { peers: { ranks: LocalWorker[] } }).peers.ranks[0]!;
    const call = (tag: string) => group.run(0, (rpc) => rpc.trainStep({ stepId: tag, loss: LossKind.DPO, examples, hyper }, 120_000), { onRestart: "abandon" });
    const pending = call("b-0");
    while ((await rank1.rpc!.health()).status !== HealthResponse_Status.BUSY) await new Promise((r) => setTimeout(r, 10));
    rank1.kill(); // inside the step: rank 0 now waits in a collective that never completes
    await expect(pending).rejects.toBeInstanceOf(WorkerRestartedError);
    expect(leader.restarts).toBe(1);
    expect(leader.pid).not.toBe(pid0);
    expect((await group.run(0, (rpc) => rpc.info())).weightsVersion).toBe(2); // back at the checkpoint
    const redone = await call("b-0");
    expect(redone.weightsVersion).toBe(3);
  }, 300_000);

  it("with resumable points: a rank killed after a point restarts the group there; the update ends bit-exact", async () => {
    const example = (i: number): TrainExample => ({
      promptTokenIds: [10 + i, 20 + i, 30 + i], completionTokenIds: [100 + i, 200 + i, 300 + i, 400 + i], chosenTokenIds: [], rejectedTokenIds: [],
      refChosenLogp: 0, refRejectedLogp: 0, advantage: 0, weight: 1, oldLogprobs: [], refLogprobs: [],
    });
    const load = async (batch: string[]) => batch.map((id) => example(Number(id.slice(2))));
    const update = (pool: WorkerPool, name: string, every: number, loadFn: typeof load) => sftUpdate({
      journal: new Journal(join(dir, `${name}.sqlite`)), pool, log: () => undefined, label: name, unit: { id: "it001/update", stage: "update", iteration: 1 },
      exampleIds: Array.from({ length: 8 }, (_, i) => `ex${i}`), load: loadFn, seed: 7, checkpointDir: join(dir, name), resumeEverySteps: every,
      hyper: { learning_rate: 1e-2, batch_size: 2, micro_batch_size: 1, epochs: 1, max_grad_norm: 1, weight_decay: 0 },
    });
    const pools = ["ref", "points"].map((name) => new WorkerPool(1, { ...spec(2), logDir: join(dir, `logs-${name}`) }, { maxRestarts: 3, windowS: 3600, retryDelayMs: 50 }));
    try {
      await Promise.all(pools.map((p) => p.start()));
      const [ref, hit] = pools as [WorkerPool, WorkerPool];
      const want = await update(ref, "ref", 0, load);
      const leader = hit.workers[0]!;
      const rank1 = (leader as unknown as { peers: { ranks: LocalWorker[] } }).peers.ranks[0]!;
      const loaded: string[][] = [];
      const got = await update(hit, "points", 1, async (batch) => {
        loaded.push(batch);
        if (loaded.length === 3) rank1.kill(); // steps 1 and 2 applied, each followed by its point (DCP)
        return load(batch);
      });
      expect(leader.restarts).toBe(1);
      expect(loaded.length).toBe(5); // 4 steps: batch 3 twice, batches 1 and 2 not trained again
      expect(loaded[3]).toEqual(loaded[2]);
      expect(got.steps.map(({ seconds: _s, ...m }) => m)).toEqual(want.steps.map(({ seconds: _s, ...m }) => m));
      const probe = (p: WorkerPool) => p.run(0, (rpc) => rpc.score({ items: [{ id: "p", promptTokenIds: prompt, completionTokenIds: [101, 201, 301] }] }, 60_000));
      expect((await probe(hit)).results[0]!.sumLogprob).toBe((await probe(ref)).results[0]!.sumLogprob);
      expect(existsSync(join(dir, "points", "points"))).toBe(false); // pruned once the update was journaled
    } finally {
      await Promise.all(pools.map((p) => p.stop()));
    }
  }, 400_000);
});
