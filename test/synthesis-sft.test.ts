// The journaled SFT update (src/train/sft.ts) on a real tiny-model worker: a trainer killed inside the update
// makes it abandon the pass and redo it from the update's starting weights, ending on exactly the weights
// of an undisturbed update; a journaled update is returned as recorded, without training again.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { WorkerPool } from "../src/cluster/pool.js";
import { Journal } from "../src/experiment/journal.js";
import type { TrainExample } from "../src/rpc/gen/promptcot_worker.js";
import { sftUpdate, type SftUpdateOptions } from "../src/train/sft.js";

const root = mkdtempSync(join(tmpdir(), "pcot-sft-"));
const pools: WorkerPool[] = [];
afterAll(async () => Promise.all(pools.map((p) => p.stop())));

const example = (i: number): TrainExample => ({
  promptTokenIds: [10 + i, 20 + i, 30 + i],
  completionTokenIds: [100 + i, 200 + i, 300 + i, 400 + i],
  chosenTokenIds: [], rejectedTokenIds: [], refChosenLogp: 0, refRejectedLogp: 0, advantage: 0, weight: 1, oldLogprobs: [], refLogprobs: [],
});
const ids = Array.from({ length: 6 }, (_, i) => `ex${i}`);

async function setup(name: string): Promise<{ pool: WorkerPool; journal: Journal; o: Omit<SftUpdateOptions, "load"> }> {
  const dir = join(root, name);
  const pool = new WorkerPool(1, { modelSource: "tiny-random-llama", dtype: "float32", device: "cpu", trainableLayers: 0, decodeWidth: 1, seed: 1, threads: 1, startupTimeoutS: 300, logDir: join(dir, "logs") }, 3);
  pools.push(pool);
  await pool.start();
  const journal = new Journal(join(root, `${name}.sqlite`));
  const o = {
    journal, pool, log: () => undefined, label: `sft ${name}`,
    unit: { id: "it000/synth/update/prompt", stage: "synth/update/prompt", iteration: 0 },
    exampleIds: ids,
    hyper: { learning_rate: 1e-2, batch_size: 2, micro_batch_size: 2, epochs: 1, max_grad_norm: 1, weight_decay: 0 },
    seed: 7, checkpointDir: join(dir, "checkpoints"),
  };
  return { pool, journal, o };
}

let ref: Awaited<ReturnType<typeof setup>>;
const load = async (batch: string[]) => batch.map((id) => example(Number(id.slice(2))));

async function probe(pool: WorkerPool): Promise<number> {
  const r = await pool.run(0, (rpc) => rpc.score({ items: [{ id: "p", promptTokenIds: [5, 6, 7], completionTokenIds: [101, 201, 301] }] }, 60_000));
  return r.results[0]!.sumLogprob;
}

describe("sftUpdate", () => {
  it("a trainer killed inside the update: the pass is redone from the starting weights and ends on the undisturbed result", async () => {
    ref = await setup("ref");
    const want = await sftUpdate({ ...ref.o, load });
    expect(want.redone).toBe(0);
    expect(want.steps).toHaveLength(3);

    const hit = await setup("killed");
    let calls = 0;
    const killing = async (batch: string[]) => {
      if (++calls === 2) hit.pool.workers[0]!.kill(); // after step 1 was applied: its weights are lost
      return load(batch);
    };
    const got = await sftUpdate({ ...hit.o, load: killing });
    expect(hit.pool.workers[0]!.restarts).toBe(1);
    expect(got.redone).toBe(1);
    expect(got.steps.map((s) => s.step)).toEqual([1, 2, 3]);
    expect(got.steps.map((s) => s.loss)).toEqual(want.steps.map((s) => s.loss));
    expect(hit.pool.checkpointStep).toBe(3);
    expect(await probe(hit.pool)).toBe(await probe(ref.pool));
  }, 300_000);

  it("returns the journaled update without training again", async () => {
    const again = await sftUpdate({ ...ref.o, load: () => Promise.reject(new Error("must not load")) });
    expect(again).toEqual(ref.o.journal.get(ref.o.unit.id));
    expect(again.checkpoint).toBe(join(ref.o.checkpointDir, "step-3"));
  });
});
