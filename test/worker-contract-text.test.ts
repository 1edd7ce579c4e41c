// Tokenize and Embed from the TypeScript client against a real Python worker (tiny random model).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalWorker } from "../src/cluster/local-launcher.js";
import type { WorkerRpc } from "../src/rpc/worker-client.js";

const dir = mkdtempSync(join(tmpdir(), "pcot-contract-text-"));
const worker = new LocalWorker("contract-text-0", {
  modelSource: "tiny-random-llama", dtype: "float32", device: "cpu", trainableLayers: 0, decodeWidth: 4, seed: 1, threads: 1,
  startupTimeoutS: 300, logDir: join(dir, "logs"),
});
let rpc: WorkerRpc;

beforeAll(async () => {
  await worker.start();
  rpc = worker.rpc!;
}, 300_000);
afterAll(async () => worker.stop());

const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i]!, 0);

describe("Tokenize and Embed from the controller", () => {
  it("Tokenize: chat prompt ids equal Generate's, completion follows, EOS appended on request", async () => {
    const messages = [{ role: "user", content: "Name a prime." }];
    const info = await rpc.info();
    const res = await rpc.tokenize(
      { items: [{ id: "a", messages, completion: "Seven." }, { id: "b", messages, completion: "Seven.", appendEos: true }] },
      30_000,
    );
    const [a, b] = res.items;
    expect(a!.id).toBe("a");
    expect(a!.completionTokenIds.length).toBeGreaterThan(0);
    expect(b!.completionTokenIds).toEqual([...a!.completionTokenIds, b!.completionTokenIds.at(-1)]);
    expect(info.eosTokenIds).toContain(b!.completionTokenIds.at(-1));
    const gen = rpc.generate({ prompts: [{ id: "a", messages, sampleSeeds: [1] }], sampling: { temperature: 0, maxTokens: 1 } }, 60_000);
    for await (const r of gen) expect(r.promptTokenIds).toEqual(a!.promptTokenIds);
    expect(a!.promptOpensThink).toBe(false);
  });

  it("Tokenize: chat_template_kwargs_json that is not a JSON object is INVALID_ARGUMENT", async () => {
    const call = rpc.tokenize({ items: [{ id: "a", text: "x" }], chatTemplateKwargsJson: "[true]" }, 30_000);
    await expect(call).rejects.toMatchObject({ code: GrpcStatus.INVALID_ARGUMENT });
  });

  it("Embed: unit vectors in request order; identical texts agree, different ones differ", async () => {
    const texts = ["Chinese remainder theorem", "graph coloring", "Chinese remainder theorem"];
    const res = await rpc.embed({ texts }, 60_000);
    const v = res.embeddings.map((e) => e.values);
    expect(v).toHaveLength(3);
    for (const x of v) expect(Math.sqrt(dot(x, x))).toBeCloseTo(1, 5);
    expect(dot(v[0]!, v[2]!)).toBeCloseTo(1, 5);
    expect(dot(v[0]!, v[1]!)).toBeLessThan(0.999);
    expect((await rpc.embed({ texts }, 60_000)).embeddings.map((e) => e.values)).toEqual(v);
  });
});
