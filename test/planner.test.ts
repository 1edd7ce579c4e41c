// The placement planner against hand-computed numbers (formulas: docs/SCALING.md "Placement planner").
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { MODEL_PRESETS, paramCounts, resolveModelShape, shapeFromHfConfig, type ModelShape } from "../src/cluster/model-shape.js";
import { GIB, planPlacement, RESERVE_BYTES, resolveLayout, rolloutMemory, smallestFit, trainerMemory, type PlanInput } from "../src/cluster/planner.js";

// A shape small enough to count by hand: attention 64·(64+2·32) + 64·64 = 12,288 weights + 2 norms of 64 = 12,416;
// MLP 3·64·128 = 24,576; block 36,992; tied embedding 1000·64 = 64,000; final norm 64.
const TOY: ModelShape = {
  name: "toy", from: "test", vocab: 1000, hidden: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 16, intermediate: 128,
  experts: 0, expertsPerToken: 0, moeIntermediate: 0, moeLayers: 0, sharedExpertIntermediate: 0,
  tiedEmbeddings: true, qkvBias: false, qkNorm: false, maxPositions: 2048,
};
const TOY_TOTAL = 64_000 + 2 * 36_992 + 64; // 138,048

const preset = (k: string): ModelShape => ({ ...MODEL_PRESETS[k]!, from: "test" });

describe("parameter counts", () => {
  it("the toy shape, by hand", () => {
    const p = paramCounts(TOY);
    expect(p.total).toBe(TOY_TOTAL);
    expect(p.perLayer).toEqual([36_992, 36_992]);
    expect(p.largestUnit).toBe(64_000); // the embedding is larger than a block
  });

  it.each([
    // [preset, published total, published non-embedding] — the Qwen model cards; SmolLM2's card (135M)
    ["qwen3-30b-a3b", 30.5e9, 29.9e9],
    ["qwen3-4b", 4.0e9, 3.6e9],
    ["qwen2.5-7b", 7.61e9, 6.53e9],
    ["qwen2.5-32b", 32.5e9, 31.0e9],
    ["smollm2-135m-instruct", 135e6, undefined],
  ])("%s matches its published size within 1%%", (name, total, nonEmbedding) => {
    const p = paramCounts(preset(name));
    const s = preset(name);
    expect(Math.abs(p.total / total - 1)).toBeLessThan(0.01);
    if (nonEmbedding) expect(Math.abs((p.total - p.embedding * (s.tiedEmbeddings ? 1 : 2)) / nonEmbedding - 1)).toBeLessThan(0.01);
  });

  it("Qwen3-30B-A3B activates 3.3B parameters per token (the card's figure, to its one decimal)", () => {
    expect(Math.abs(paramCounts(preset("qwen3-30b-a3b")).active - 3.3e9)).toBeLessThan(0.1e9);
  });
});

describe("memory per GPU", () => {
  const w = { dtypeBytes: 2 as const, genContext: 100, genConcurrency: 4, trainTokens: 1000 };

  it("a trainer rank: FSDP shards of weights, grads, fp32 master + AdamW; gathered units; checkpointed activations; one logits chunk", () => {
    const m = trainerMemory(TOY, paramCounts(TOY), w, 2, 1, true);
    expect(m.weights).toBe(TOY_TOTAL); // 2 bytes × P / 2
    expect(m.grads).toBe(TOY_TOTAL);
    expect(m.optimizer).toBe(6 * TOY_TOTAL); // (4 master + 8 moments) × P / 2
    expect(m.gathered).toBe(2 * 2 * 64_000);
    // L·T·h·2 = 2·1000·64·2 = 256,000 kept; one block re-run: 2 · T · 2 · (2·4·16 + 2·2·16 + 4·64 + 3·128 = 832) = 3,328,000
    expect(m.activations).toBe(256_000 + 3_328_000);
    expect(m.logits).toBe(256 * 1000 * 12);
    expect(m.total).toBe(8 * TOY_TOTAL + 256_000 + 3_584_000 + 3_072_000 + RESERVE_BYTES);
  });

  it("without checkpointing every block keeps its activations; sequence parallel divides the tokens", () => {
    expect(trainerMemory(TOY, paramCounts(TOY), w, 1, 1, false).activations).toBe(3 * 1000 * 2 * 832);
    expect(trainerMemory(TOY, paramCounts(TOY), w, 2, 2, false).activations).toBe(3 * 500 * 2 * 832);
    expect(trainerMemory(TOY, paramCounts(TOY), w, 1, 1, true).gathered).toBe(0); // nothing to gather unsharded
  });

  it("float32 weights are their own master: 4 + 4 + 8 bytes per parameter", () => {
    const m = trainerMemory(TOY, paramCounts(TOY), { ...w, dtypeBytes: 4 }, 1, 1, true);
    expect([m.weights, m.grads, m.optimizer]).toEqual([4 * TOY_TOTAL, 4 * TOY_TOTAL, 8 * TOY_TOTAL]);
  });

  it("trainable_layers: gradients and optimizer state only for those parameters", () => {
    const m = trainerMemory(TOY, paramCounts(TOY), { ...w, trainableParams: 36_992 }, 1, 1, true);
    expect([m.weights, m.grads, m.optimizer]).toEqual([2 * TOY_TOTAL, 2 * 36_992, 12 * 36_992]);
  });

  it("a rollout GPU: weights / TP and the KV cache of every sequence at full context", () => {
    const m = rolloutMemory(TOY, paramCounts(TOY), w, 2);
    expect(m.weights).toBe(TOY_TOTAL);
    // 4 sequences × 100 tokens × 2 layers × (K, V) × 1 KV head per GPU × 16 × 2 bytes
    expect(m.kvCache).toBe(4 * 100 * 2 * 2 * 1 * 16 * 2);
  });

  it("Qwen3-30B-A3B's KV cache: 96 KiB per token at TP 1; KV heads replicate beyond TP 4", () => {
    const s = preset("qwen3-30b-a3b");
    const one = { ...w, genContext: 1, genConcurrency: 1 };
    expect(rolloutMemory(s, paramCounts(s), one, 1).kvCache).toBe(48 * 2 * 4 * 128 * 2);
    expect(rolloutMemory(s, paramCounts(s), one, 4).kvCache).toBe(48 * 2 * 1 * 128 * 2);
    expect(rolloutMemory(s, paramCounts(s), one, 8).kvCache).toBe(48 * 2 * 1 * 128 * 2);
  });
});

const input = (over: Partial<PlanInput> = {}): PlanInput => ({
  model: preset("qwen3-30b-a3b"),
  cluster: { nodes: 1, gpusPerNode: 8, gpuMemoryGib: 80 },
  parallel: { roles: "split", tensorParallel: 1, rolloutGpus: 0, fsdp: 0, sequenceParallel: 1, activationCheckpointing: true, memoryFraction: 0.9 },
  workload: { dtypeBytes: 2, genContext: 1000, genConcurrency: 1, trainTokens: 1000 },
  ...over,
});

describe("layout", () => {
  it("split: engines on the first GPUs, the trainer on the rest; FSDP over all trainer GPUs by default", () => {
    const l = resolveLayout(TOY, { nodes: 2, gpusPerNode: 8, gpuMemoryGib: 80 }, { ...input().parallel, tensorParallel: 2, rolloutGpus: 4 });
    expect(l).toMatchObject({ totalGpus: 16, engines: 2, rolloutGpus: 4, trainerGpus: 12, fsdp: 12, replicas: 1, problems: [] });
  });

  it("names what cannot be built: TP across nodes or not dividing the heads, FSDP not dividing the trainer GPUs", () => {
    const l = resolveLayout(TOY, { nodes: 1, gpusPerNode: 2, gpuMemoryGib: 80 }, { ...input().parallel, tensorParallel: 3, rolloutGpus: 0, fsdp: 0 });
    expect(l.problems.join("\n")).toMatch(/exceeds the 2 GPU\(s\) of a node/);
    expect(l.problems.join("\n")).toMatch(/does not divide the model's 4 attention heads/);
    const f = resolveLayout(TOY, { nodes: 1, gpusPerNode: 8, gpuMemoryGib: 80 }, { ...input().parallel, rolloutGpus: 2, fsdp: 4 });
    expect(f.problems).toEqual(["parallel.fsdp 4 does not divide the 6 trainer GPUs"]);
  });
});

describe("fit and the smallest cluster", () => {
  it("Qwen3-30B-A3B's training state (16 bytes × 30.5B) needs FSDP over at least 7 GPUs of 80 GiB at 90%", () => {
    // Per rank ≈ 488.5e9 / F + 2.49e9 gathered + 2 GiB reserve + ~0.8e9 activations and logits ≤ 77.3e9 → F ≥ 7.
    expect(planPlacement(input({ cluster: { nodes: 1, gpusPerNode: 7, gpuMemoryGib: 80 }, parallel: { ...input().parallel, roles: "colocated" } })).fits).toBe(true);
    const six = planPlacement(input({ cluster: { nodes: 1, gpusPerNode: 6, gpuMemoryGib: 80 }, parallel: { ...input().parallel, roles: "colocated" } }));
    expect(six.fits).toBe(false);
    // 16 B × 30.53e9 = 455 GiB of training state; 6 × 72 GiB = 432 GiB; one rank: 75.8 + 2.3 + 2 + 0.8 = 80.9 GiB
    expect(six.reasons).toEqual([
      "the training state alone (weights, gradients, fp32 master, AdamW) is 455.0 GiB; all 6 GPU(s) together hold 432.0 GiB",
      expect.stringMatching(/^a colocated GPU needs 80\.9 GiB \(fp32 master \+ AdamW 56\.9 GiB, weights 9\.5 GiB\); 72\.0 GiB usable of 80 GiB$/),
    ]);
    const fit = smallestFit(six.input)!;
    expect(fit.plan.layout.totalGpus).toBe(7);
    expect(fit.cluster).toEqual({ nodes: 7, gpusPerNode: 1, gpuMemoryGib: 80 });
    expect(fit.parallel.roles).toBe("colocated");
  });

  it("one GPU refuses the 30B model with the memory reason, and the smallest fit is not smaller than 7 GPUs", () => {
    const one = planPlacement(input({ cluster: { nodes: 1, gpusPerNode: 1, gpuMemoryGib: 80 }, parallel: { ...input().parallel, roles: "colocated" } }));
    expect(one.fits).toBe(false);
    expect(one.colocated!.total / GIB).toBeGreaterThan(450);
    expect(smallestFit(one.input)!.plan.layout.totalGpus).toBe(7);
  });

  it("nothing fits when one sequence's KV cache exceeds a whole node", () => {
    const huge = input({ workload: { dtypeBytes: 2, genContext: 10_000_000, genConcurrency: 64, trainTokens: 1000 } });
    expect(smallestFit(planPlacement(huge).input, 64)).toBeUndefined();
  });

  it("a context beyond max_position_embeddings is noted (RoPE scaling)", () => {
    const p = planPlacement(input({ workload: { dtypeBytes: 2, genContext: 83_968, genConcurrency: 1, trainTokens: 1000 } }));
    expect(p.notes.join("\n")).toMatch(/exceeds the model's max_position_embeddings 40960.*YaRN factor ≥ 2.1/);
  });
});

describe("model shapes", () => {
  it("a Qwen3-MoE config.json gives the preset's shape; mlp_only_layers become dense blocks", () => {
    const hf = {
      model_type: "qwen3_moe", vocab_size: 151936, hidden_size: 2048, num_hidden_layers: 48, num_attention_heads: 32, num_key_value_heads: 4,
      head_dim: 128, intermediate_size: 6144, num_experts: 128, num_experts_per_tok: 8, moe_intermediate_size: 768, decoder_sparse_step: 1,
      mlp_only_layers: [], tie_word_embeddings: false, max_position_embeddings: 40960,
    };
    const { name: _n, from: _f, ...shape } = shapeFromHfConfig(hf, "x/config.json", "Qwen3-30B-A3B");
    const { name: _pn, ...expected } = MODEL_PRESETS["qwen3-30b-a3b"]!;
    expect(shape).toEqual(expected);
    const mixed = shapeFromHfConfig({ ...hf, mlp_only_layers: [0, 1] }, "x", "m");
    expect(mixed.moeLayers).toBe(46);
    // attention 2048·(4096 + 2·512) + 4096·2048 + q/k norms 2·128 + 2 norms of 2048 = 18,878,720
    expect(paramCounts(mixed).perLayer[0]).toBe(18_878_720 + 3 * 2048 * 6144); // dense block
    expect(paramCounts(mixed).perLayer[47]).toBe(18_878_720 + 128 * 3 * 2048 * 768 + 2048 * 128); // experts + router
  });

  it("model.source: a directory's config.json, else a preset by the directory's name, else a clear error", () => {
    const dir = mkdtempSync(join(tmpdir(), "pcot-shape-"));
    mkdirSync(join(dir, "my-model"));
    writeFileSync(join(dir, "my-model", "config.json"), JSON.stringify({ model_type: "llama", vocab_size: 1000, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 128, tie_word_embeddings: true }));
    const s = resolveModelShape(join(dir, "my-model"));
    expect(paramCounts(s).total).toBe(TOY_TOTAL);
    expect(resolveModelShape("/nowhere/Qwen3-4B").name).toBe("Qwen3-4B");
    expect(resolveModelShape("/nowhere/Qwen3-4B").from).toMatch(/not on this machine/);
    expect(() => resolveModelShape(join(dir, "missing-model"))).toThrow(/cannot tell the shape of model .*missing-model does not exist/);
    writeFileSync(join(dir, "my-model", "config.json"), JSON.stringify({ vocab_size: 10 }));
    expect(() => resolveModelShape(join(dir, "my-model"))).toThrow(/has no "hidden_size"/);
  });
});
