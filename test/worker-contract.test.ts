// The TypeScript client against a real Python worker (tiny random model) over real gRPC:
// every RPC of promptcot.worker.v1, as the controller calls it.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalWorker } from "../src/cluster/local-launcher.js";
import { HealthResponse_Status, LossKind, type GenerateResponse } from "../src/rpc/gen/promptcot_worker.js";
import type { WorkerRpc } from "../src/rpc/worker-client.js";

const dir = mkdtempSync(join(tmpdir(), "pcot-contract-"));
const worker = new LocalWorker("contract-0", {
  modelSource: "tiny-random-llama", dtype: "float32", device: "cpu", trainableLayers: 0, decodeWidth: 4, seed: 1, threads: 1,
  startupTimeoutS: 300, logDir: join(dir, "logs"),
});
let rpc: WorkerRpc;

async function collect(it: AsyncIterable<GenerateResponse>): Promise<GenerateResponse[]> {
  const out: GenerateResponse[] = [];
  for await (const r of it) out.push(r);
  return out.sort((a, b) => a.promptId.localeCompare(b.promptId) || a.sampleIndex - b.sampleIndex);
}

const gen = (prompts: { id: string; text: string; seeds: number[] }[]) =>
  collect(
    rpc.generate(
      { prompts: prompts.map((p) => ({ id: p.id, text: p.text, sampleSeeds: p.seeds })), sampling: { temperature: 1, topP: 1, maxTokens: 12 }, returnLogprobs: true },
      120_000,
    ),
  );

beforeAll(async () => {
  await worker.start();
  rpc = worker.rpc!;
}, 300_000);
afterAll(async () => worker.stop());

describe("worker contract from the controller", () => {
  it("Info and Health", async () => {
    const info = await rpc.info();
    expect(info.protoVersion).toBe("promptcot.worker.v1");
    expect(info.numParameters).toBeGreaterThan(0);
    expect((await rpc.health()).status).toBe(HealthResponse_Status.READY);
  });

  it("Generate is a function of (prompt, seed): same seeds, same samples, whatever else is asked", async () => {
    const alone = await gen([{ id: "a", text: "1 + 1 =", seeds: [11, 12] }]);
    const mixed = await gen([{ id: "b", text: "something else", seeds: [5] }, { id: "a", text: "1 + 1 =", seeds: [11, 12] }]);
    expect(alone).toHaveLength(2);
    expect(mixed.filter((r) => r.promptId === "a").map((r) => r.tokenIds)).toEqual(alone.map((r) => r.tokenIds));
    expect(alone[0]!.tokenIds).not.toEqual(alone[1]!.tokenIds);
  });

  it("ScoreLogProbs agrees with the sampled tokens' log-probs", async () => {
    const [s] = await gen([{ id: "a", text: "2 + 2 =", seeds: [3] }]);
    const res = await rpc.score({ items: [{ id: "x", promptTokenIds: s!.promptTokenIds, completionTokenIds: s!.tokenIds }], returnTokenLogprobs: true }, 60_000);
    const sum = s!.logprobs.reduce((a, b) => a + b, 0);
    expect(res.results[0]!.sumLogprob).toBeCloseTo(sum, 2);
    expect(res.results[0]!.numTokens).toBe(s!.tokenIds.length);
  });

  it("DPO steps lower the DPO loss on a fixed batch; a checkpoint round-trip restores the exact log-probs", async () => {
    const [c, r] = await gen([{ id: "p", text: "Say yes:", seeds: [1, 2] }]);
    const items = [
      { id: "c", promptTokenIds: c!.promptTokenIds, completionTokenIds: c!.tokenIds },
      { id: "r", promptTokenIds: r!.promptTokenIds, completionTokenIds: r!.tokenIds },
    ];
    const ref = (await rpc.score({ items }, 60_000)).results;
    const example = {
      promptTokenIds: c!.promptTokenIds, chosenTokenIds: c!.tokenIds, rejectedTokenIds: r!.tokenIds,
      refChosenLogp: ref[0]!.sumLogprob, refRejectedLogp: ref[1]!.sumLogprob,
    };
    const losses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await rpc.trainStep(
        { stepId: `contract-${i}`, loss: LossKind.DPO, examples: [example], hyper: { learningRate: 1e-3, beta: 0.1, microBatchSize: 1 } },
        60_000,
      );
      losses.push(res.metrics.loss!);
    }
    expect(losses[0]).toBeCloseTo(Math.log(2), 4); // policy == reference at the first step
    expect(losses[3]!).toBeLessThan(losses[0]!);
    const before = (await rpc.score({ items, returnTokenLogprobs: true }, 60_000)).results;
    const ckpt = join(dir, "ckpt");
    await rpc.saveCheckpoint({ path: ckpt, includeOptimizer: true }, 60_000);
    await rpc.trainStep({ stepId: "contract-after-save", loss: LossKind.DPO, examples: [example], hyper: { learningRate: 1e-2, beta: 0.1, microBatchSize: 1 } }, 60_000);
    const moved = (await rpc.score({ items, returnTokenLogprobs: true }, 60_000)).results;
    expect(moved[0]!.tokenLogprobs).not.toEqual(before[0]!.tokenLogprobs);
    await rpc.loadCheckpoint({ path: ckpt, loadOptimizer: true }, 60_000);
    const restored = (await rpc.score({ items, returnTokenLogprobs: true }, 60_000)).results;
    expect(restored.map((x) => x.tokenLogprobs)).toEqual(before.map((x) => x.tokenLogprobs));
    await expect(rpc.saveCheckpoint({ path: ckpt }, 60_000)).rejects.toThrow(/exist/i);
  });
});
