// The journaled SFT update (src/train/sft.ts) on a real tiny-model worker: a trainer killed inside the update
// makes it abandon the pass and redo it from the update's starting weights (or, with resumable points, from
// the newest point; a new controller loads that point into a fresh trainer), ending on exactly the weights
// of an undisturbed update; a journaled update is returned as recorded, without training again.
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { WorkerPool } from "../src/cluster/pool.js";
import { Journal } from "../src/experiment/journal.js";
import type { TrainExample } from "../src/rpc/gen/promptcot_worker.js";
import { sftUpdate, type SftUpdateOptions, type SftUpdateRecord } from "../src/train/sft.js";
import { POINT_STAGE } from "../src/train/update-points.js";

const root = mkdtempSync(join(tmpdir(), "pcot-sft-"));
const pools: WorkerPool[] = [];
afterAll(async () => Promise.all(pools.map((p) => p.stop())));

const example = (i: number): TrainExample => ({
  promptTokenIds: [10 + i, 20 + i, 30 + i],
  completionTokenIds: [100 + i, 200 + i, 300 + i, 400 + i],
  chosenTokenIds: [], rejectedTokenIds: [], refChosenLogp: 0, refRejectedLogp: 0, advantage: 0, weight: 1, oldLogprobs: [], refLogprobs: [],
});
const ids = Array.from({ length: 6 }, (_, i) => `ex${i}`);

async function startPool(dir: string): Promise<WorkerPool> {
  const pool = new WorkerPool(1, { modelSource: "tiny-random-llama", dtype: "float32", device: "cpu", trainableLayers: 0, decodeWidth: 1, seed: 1, threads: 1, startupTimeoutS: 300, logDir: join(dir, "logs") }, 3);
  pools.push(pool);
  await pool.start();
  return pool;
}

async function setup(name: string): Promise<{ pool: WorkerPool; journal: Journal; o: Omit<SftUpdateOptions, "load"> }> {
  const dir = join(root, name);
  const pool = await startPool(dir);
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
let wanted: SftUpdateRecord | undefined;
const want = () => wanted!;
const load = async (batch: string[]) => batch.map((id) => example(Number(id.slice(2))));

async function probe(pool: WorkerPool): Promise<number> {
  const r = await pool.run(0, (rpc) => rpc.score({ items: [{ id: "p", promptTokenIds: [5, 6, 7], completionTokenIds: [101, 201, 301] }] }, 60_000));
  return r.results[0]!.sumLogprob;
}

describe("sftUpdate", () => {
  it("a trainer killed inside the update: the pass is redone from the starting weights and ends on the undisturbed result", async () => {
    ref = await setup("ref");
    const want = await sftUpdate({ ...ref.o, load });
    wanted = want;
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

  it("with a resumable point after every step: a restart redoes only the step after the newest point", async () => {
    const hit = await setup("points");
    const loaded: string[][] = [];
    const killing = async (batch: string[]) => {
      loaded.push(batch);
      if (loaded.length === 3) hit.pool.workers[0]!.kill(); // steps 1 and 2 applied, each followed by its point
      return load(batch);
    };
    const got = await sftUpdate({ ...hit.o, resumeEverySteps: 1, load: killing });
    expect(hit.pool.workers[0]!.restarts).toBe(1);
    expect(loaded.length).toBe(4); // batch 3 twice; batches 1 and 2 were not trained again
    expect(loaded[3]).toEqual(loaded[2]);
    expect(got.steps.map(({ seconds: _s, ...m }) => m)).toEqual(want().steps.map(({ seconds: _s, ...m }) => m));
    expect(await probe(hit.pool)).toBe(await probe(ref.pool));
    expect(hit.journal.list(POINT_STAGE, 0).map((r) => r.id)).toEqual([`${hit.o.unit.id}/point/000001`, `${hit.o.unit.id}/point/000002`]);
    expect(existsSync(join(hit.o.checkpointDir, "points"))).toBe(false); // pruned once the update was journaled
  }, 300_000);

  it("a new controller (a fresh trainer at the update's start) loads the newest point and goes on from there", async () => {
    const first = await setup("points-crash");
    const o = { ...first.o, resumeEverySteps: 1 };
    let n = 0;
    const crashing = async (batch: string[]) => {
      if (++n === 3) throw new Error("controller crash"); // after the point of step 2
      return load(batch);
    };
    await expect(sftUpdate({ ...o, load: crashing })).rejects.toThrow("controller crash");
    await first.pool.stop();
    const pool = await startPool(join(root, "points-crash-2")); // the base model, as run.ts starts a run without a journaled update
    const loaded: string[][] = [];
    const got = await sftUpdate({ ...o, pool, load: async (b) => (loaded.push(b), load(b)) });
    expect(loaded.length).toBe(1); // only step 3
    expect(pool.workers[0]!.restarts).toBe(0);
    expect(got.steps.map(({ seconds: _s, ...m }) => m)).toEqual(want().steps.map(({ seconds: _s, ...m }) => m));
    expect(await probe(pool)).toBe(await probe(ref.pool));
  }, 300_000);

  it("returns the journaled update without training again", async () => {
    const again = await sftUpdate({ ...ref.o, load: () => Promise.reject(new Error("must not load")) });
    expect(again).toEqual(ref.o.journal.get(ref.o.unit.id));
    expect(again.checkpoint).toBe(join(ref.o.checkpointDir, "step-3"));
  });
});
