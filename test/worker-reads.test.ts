// The trainer reads token ids from the run's shards (ShardRef) instead of receiving them: which pools do,
// the requests the controller builds from journaled samples, and a real worker scoring and training on them
// exactly as on inline ids. Damaged shards and paths outside the run directory are refused by name.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WorkerSpec } from "../src/cluster/local-launcher.js";
import { WorkerPool } from "../src/cluster/pool.js";
import { ClusterSchema } from "../src/config/schema.js";
import type { RunContext } from "../src/experiment/context.js";
import { Journal } from "../src/experiment/journal.js";
import { fieldRef } from "../src/experiment/payload.js";
import { LossKind, type TrainExample } from "../src/rpc/gen/promptcot_worker.js";
import type { SampleRecord } from "../src/rollout/generate-stage.js";
import { pairIds, scoreItemOf, workerReadsShards, workersReadShards } from "../src/train/worker-reads.js";

describe("workersReadShards", () => {
  const local = ClusterSchema.parse({});
  const ray = ClusterSchema.parse({ type: "ray" });
  const rayShared = ClusterSchema.parse({ type: "ray", ray: { shared_run_dir: true } });
  it("local workers read shards; Ray workers only on a shared run directory; the env forces inline", () => {
    expect([workersReadShards(local, {}), workersReadShards(ray, {}), workersReadShards(rayShared, {})]).toEqual([true, false, true]);
    expect(workersReadShards(local, { PROMPTCOT_WORKER_READS: "inline" })).toBe(false);
    expect(workersReadShards(rayShared, { PROMPTCOT_WORKER_READS: "auto" })).toBe(true);
    expect(() => workersReadShards(local, { PROMPTCOT_WORKER_READS: "yes" })).toThrow(/PROMPTCOT_WORKER_READS='yes' is not a choice; use 'auto'/);
  });
});

/** Samples as the generate stage journals them: 2 prompts × 3 samples, ids within the tiny model's vocabulary. */
function sampleRows(iteration: number): { id: string; stage: string; iteration: number; result: SampleRecord }[] {
  let x = 12345;
  const rnd = (n: number) => Array.from({ length: n }, () => ((x = (x * 1103515245 + 12345) % 2 ** 31), 3 + (x % 1900)));
  return [0, 1].flatMap((p) => {
    const prompt = rnd(6 + p);
    return [0, 1, 2].map((s) => ({
      id: `it001/rollout/t${p}/00${s}`, stage: "rollout", iteration,
      result: { prompt_id: `t${p}`, sample: s, seed: s, text: `answer ${p}.${s}`, token_ids: rnd(5 + 3 * s), prompt_token_ids: prompt, finish_reason: "stop", prompt_opens_think: false },
    }));
  });
}

describe("a real worker reading the journal's shards", () => {
  const runDir = mkdtempSync(join(tmpdir(), "pcot-reads-"));
  const shards = new Journal(join(runDir, "journal.sqlite"), { dataPlane: "shards" });
  const inline = new Journal(join(runDir, "inline.sqlite"), { dataPlane: "inline" });
  const spec: WorkerSpec = {
    modelSource: "tiny-random-llama", dtype: "float32", device: "cpu", trainableLayers: 0, decodeWidth: 1, seed: 3, threads: 1,
    startupTimeoutS: 300, logDir: join(runDir, "logs"), runDir,
  };
  const pool = new WorkerPool(1, spec, 0);
  const rows = sampleRows(1);
  shards.record(rows);
  inline.record(rows);
  const read = (j: Journal) => j.list<SampleRecord>("rollout", 1).map((r) => r.result);
  beforeAll(() => pool.start(), 300_000);
  afterAll(async () => {
    await pool.stop();
    shards.close();
    inline.close();
  });

  it("rows of the shard plane carry refs (the prompt's record shared by its samples); inline-plane rows fall back to ids", () => {
    const [a, b] = read(shards);
    const p = fieldRef(a!, "prompt_token_ids")!;
    expect(p.file.startsWith(join(runDir, "shards", "rollout", "it001"))).toBe(true);
    expect(fieldRef(b!, "prompt_token_ids")).toEqual(p);
    expect(fieldRef(a!, "token_ids")!.offset).not.toBe(fieldRef(b!, "token_ids")!.offset);
    expect(Object.keys(a!)).not.toContain("$shard"); // the record the stage wrote, nothing more
    const fromInline = read(inline)[0]!;
    expect(fieldRef(fromInline, "token_ids")).toBeUndefined();
    expect(scoreItemOf("x", fromInline, true)).toEqual({ id: "x", promptTokenIds: rows[0]!.result.prompt_token_ids, completionTokenIds: rows[0]!.result.token_ids, promptRef: undefined, completionRef: undefined });
  });

  it("the controller sends refs only to a worker that has a run directory and says it reads them", async () => {
    const ctxOf = (p: WorkerPool, cluster = ClusterSchema.parse({})) => ({ cfg: { cluster }, pool: p }) as unknown as RunContext;
    expect(await workerReadsShards(ctxOf(pool), 0)).toBe(true);
    expect(await workerReadsShards(ctxOf(pool, ClusterSchema.parse({ type: "ray" })), 0)).toBe(false);
    const bare = new WorkerPool(1, { ...spec, runDir: undefined, logDir: join(runDir, "logs-bare") }, 0);
    await bare.start();
    try {
      expect((await bare.run(0, (rpc) => rpc.info())).readsShardRefs).toBe(false);
      expect(await workerReadsShards(ctxOf(bare), 0)).toBe(false);
    } finally {
      await bare.stop();
    }
  }, 300_000);

  it("ScoreLogProbs on refs equals the inline call bit for bit", async () => {
    const samples = read(shards);
    const req = (refs: boolean) => ({ items: samples.map((s, i) => scoreItemOf(String(i), s, refs)), returnTokenLogprobs: true, logitTemperature: 0 });
    expect(req(true).items.every((i) => i.promptTokenIds.length === 0 && i.completionTokenIds.length === 0 && i.completionRef)).toBe(true);
    const [byRef, byIds] = [await pool.run(0, (rpc) => rpc.score(req(true), 120_000)), await pool.run(0, (rpc) => rpc.score(req(false), 120_000))];
    expect(byRef.results).toEqual(byIds.results);
    expect(byIds.results.map((r) => r.numTokens)).toEqual(rows.map((r) => r.result.token_ids.length));
  });

  it("a DPO TrainStep on refs gives the same metrics as inline", async () => {
    const samples = read(shards);
    const examples = (refs: boolean): TrainExample[] => [[0, 1], [3, 5]].map(([c, r]) => ({
      ...pairIds(samples[c!]!, samples[r!]!, refs), refChosenLogp: -40, refRejectedLogp: -41, advantage: 0, weight: 1, oldLogprobs: [], refLogprobs: [],
    }));
    expect(examples(true)[0]!.chosenRef?.section).toBe("token_ids");
    const step = (refs: boolean, id: string) => pool.run(0, (rpc) =>
      rpc.trainStep({ stepId: id, loss: LossKind.DPO, examples: examples(refs), hyper: { learningRate: 0, beta: 0.1 } }, 120_000));
    const [a, b] = [await step(true, "refs"), await step(false, "inline")]; // learning rate 0: both see the same weights
    const { seconds: _s, ...ma } = a.metrics;
    const { seconds: _t, ...mb } = b.metrics;
    expect(ma).toEqual(mb);
    expect(ma.loss).toBeGreaterThan(0);
  });

  it("a damaged record is INVALID_ARGUMENT naming the file and offset; a path outside the run directory is refused", async () => {
    const s = read(shards)[5]!;
    const ref = fieldRef(s, "token_ids")!;
    const item = scoreItemOf("x", s, true);
    const copy = join(runDir, "shards", "damaged.pcs");
    const bytes = readFileSync(ref.file);
    bytes[ref.offset + ref.length - 1]! ^= 0x01;
    writeFileSync(copy, bytes);
    const call = (completionRef: typeof item.completionRef) => pool.run(0, (rpc) => rpc.score({ items: [{ ...item, completionRef }] }, 120_000));
    await expect(call({ ...ref, file: copy })).rejects.toMatchObject({ code: GrpcStatus.INVALID_ARGUMENT, details: `shard ${copy} at byte ${ref.offset}: crc32 mismatch, the record is damaged or was changed after the controller journaled it` });
    const outside = join(mkdtempSync(join(tmpdir(), "pcot-outside-")), "x.pcs");
    writeFileSync(outside, readFileSync(ref.file));
    await expect(call({ ...ref, file: outside })).rejects.toMatchObject({ code: GrpcStatus.INVALID_ARGUMENT, details: expect.stringContaining(`shard ref '${outside}' is outside the run directory`) });
    expect(pool.workers[0]!.restarts).toBe(0); // a bad request, not a dead worker
  });
});
