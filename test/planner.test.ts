// The placement planner against hand-computed numbers (formulas: docs/SCALING.md "Placement planner").
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { MODEL_PRESETS, paramCounts, resolveModelShape, shapeFromHfConfig, type ModelShape } from "../src/cluster/model-shape.js";
import { planExperiment, planLines } from "../src/cluster/plan-config.js";
import { loadExperiment } from "../src/config/load.js";
import { GIB, planPlacement, RESERVE_BYTES, resolveLayout, rolloutMemory, smallestFit, trainerMemory, trainerStartup, type PlanInput } from "../src/cluster/planner.js";

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

  it("the largest tensor: a MoE layer's fused gate/up experts, or the embedding; the experts' parameters", () => {
    expect(paramCounts(preset("qwen3-30b-a3b"))).toMatchObject({ largestTensor: 128 * 2 * 768 * 2048, largestIsFusedExperts: true, expertParams: 48 * 128 * 3 * 2048 * 768 });
    expect(paramCounts(TOY)).toMatchObject({ largestTensor: 64_000, largestIsFusedExperts: false, expertParams: 0 });
  });

  it("Qwen3-30B-A3B activates 3.3B parameters per token (the card's figure, to its one decimal)", () => {
    expect(Math.abs(paramCounts(preset("qwen3-30b-a3b")).active - 3.3e9)).toBeLessThan(0.1e9);
  });
});

describe("memory per GPU", () => {
  const w = { dtypeBytes: 2 as const, genContext: 100, genConcurrency: 4, trainTokens: 1000 };
  // L·T·h·2 = 2·1000·64·2 = 256,000 kept; one block re-run: 2 · T · 2 · (2·4·16 + 2·2·16 + 4·64 + 3·128 = 832) = 3,328,000
  const ACTIVATIONS = 256_000 + 3_328_000;

  it("an FSDP rank: fp32 shards, fp32 gradients and AdamW over its rows; the root held gathered; a block's units; one logits chunk", () => {
    const m = trainerMemory(TOY, paramCounts(TOY), w, 2);
    expect(m.weights).toBe(2 * TOY_TOTAL); // 4 bytes × P / 2: the fp32 shards are the masters
    expect(m.grads).toBe(2 * TOY_TOTAL);
    expect(m.optimizer).toBe(4 * TOY_TOTAL); // two fp32 moments × P / 2
    // root (tied embedding 64,000 + final norm 64) in bf16 with its bf16 gradient: 4 · 64,064; then the larger of
    // a block running + prefetched + its gradient and fp32 reduce buffer (2·2 + 2 + 4 = 10 · 36,992) and the
    // root's reduce buffer (4 · 64,064)
    expect(m.gathered).toBe(4 * 64_064 + 10 * 36_992);
    expect(m.activations).toBe(ACTIVATIONS);
    expect(m.logits).toBe(256 * 1000 * 12);
    expect(m.mapped).toBe(0);
    expect(m.optimizerStep).toBe(2 * TOY_TOTAL); // one fp32 temporary of the local trainable parameters
    // what persists, plus the backward's transients (larger here than the optimizer step's)
    expect(m.total).toBe(8 * TOY_TOTAL + RESERVE_BYTES + 4 * 64_064 + 10 * 36_992 + ACTIVATIONS + 3_072_000);
  });

  it("one rank (the single-rank worker): the model in bf16, fp32 masters, bf16 + fp32 master gradients, AdamW; nothing gathered", () => {
    const m = trainerMemory(TOY, paramCounts(TOY), w, 1);
    expect([m.weights, m.grads, m.optimizer, m.gathered]).toEqual([2 * TOY_TOTAL, 6 * TOY_TOTAL, 12 * TOY_TOTAL, 0]);
    expect(m.activations).toBe(ACTIVATIONS); // checkpointed by default: the worker wraps every block
  });

  it("activation_checkpointing false: every block's internals kept, plus one block's gradients (layers + 1 blocks)", () => {
    const off = trainerMemory(TOY, paramCounts(TOY), { ...w, activationCheckpointing: false }, 1);
    expect(off.activations).toBe(3 * 1_664_000); // (2 + 1) · T · 2 · 832
    expect(trainerMemory(TOY, paramCounts(TOY), { ...w, activationCheckpointing: true }, 2).activations).toBe(ACTIVATIONS);
    // a real shape at length: off exceeds on by about layers × block width (36 × T · b · W for Qwen3-4B)
    const s = preset("qwen3-4b");
    const big = { ...w, trainTokens: 16_384 };
    const act = (a: boolean) => trainerMemory(s, paramCounts(s), { ...big, activationCheckpointing: a }, 4).activations;
    const [on4b, off4b] = [act(true), act(false)];
    const width = 2 * s.heads * s.headDim + 2 * s.kvHeads * s.headDim + 4 * s.hidden + 3 * s.intermediate;
    const layersTimesBlock = s.layers * 16_384 * 2 * width;
    expect((off4b - on4b) / layersTimesBlock).toBeGreaterThan(0.9);
    expect((off4b - on4b) / layersTimesBlock).toBeLessThan(1);
  });

  it("float32 weights are their own master: 4 + 4 + 8 bytes per parameter; on a CPU they are views of the mapped file", () => {
    const gpu = trainerMemory(TOY, paramCounts(TOY), { ...w, dtypeBytes: 4 }, 1);
    expect([gpu.weights, gpu.grads, gpu.optimizer, gpu.mapped]).toEqual([4 * TOY_TOTAL, 4 * TOY_TOTAL, 8 * TOY_TOTAL, 0]);
    expect(gpu.optimizerStep).toBe(4 * TOY_TOTAL); // foreach AdamW: one fp32 temporary of every trainable parameter
    const cpu = trainerMemory(TOY, paramCounts(TOY), { ...w, dtypeBytes: 4 }, 1, true);
    expect([cpu.weights, cpu.mapped]).toEqual([0, 4 * TOY_TOTAL]); // a dense model: no fused experts to copy
    expect(cpu.optimizerStep).toBe(2 * 4 * 64_000); // per-tensor AdamW: two temporaries of the largest tensor
  });

  it("trainable_layers: gradients and optimizer state only for those parameters", () => {
    const m = trainerMemory(TOY, paramCounts(TOY), { ...w, trainableParams: 36_992 }, 1);
    expect([m.weights, m.grads, m.optimizer]).toEqual([2 * TOY_TOTAL, 6 * 36_992, 12 * 36_992]);
    const r = trainerMemory(TOY, paramCounts(TOY), { ...w, trainableParams: 36_992 }, 2);
    expect([r.weights, r.grads, r.optimizer]).toEqual([2 * TOY_TOTAL, 2 * 36_992, 4 * 36_992]);
  });

  it("start-up: the whole model in its dtype (one rank) or this rank's fp32 shards, plus the source pages it reads", () => {
    expect(trainerStartup(paramCounts(TOY), w, 1)).toEqual({ weights: 2 * TOY_TOTAL, mappedSource: 2 * TOY_TOTAL, readBuffer: 0, total: 4 * TOY_TOTAL });
    // 4 ranks: the largest tensor is the 64,000-parameter embedding, its rows read in bf16 and cast to fp32: 6 bytes / 4
    expect(trainerStartup(paramCounts(TOY), w, 4)).toEqual({ weights: TOY_TOTAL, mappedSource: TOY_TOTAL / 2, readBuffer: 96_000, total: 1.5 * TOY_TOTAL + 96_000 });
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
  parallel: { roles: "split", tensorParallel: 1, rolloutGpus: 0, fsdp: 0, sequenceParallel: 1, memoryFraction: 0.9 },
  workload: { dtypeBytes: 2, genContext: 1000, genConcurrency: 1, trainTokens: 1000 },
  trainerRanks: 1,
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
  const split = (gpus: number, over: Partial<PlanInput["parallel"]> = {}) =>
    input({ cluster: { nodes: 1, gpusPerNode: gpus, gpuMemoryGib: 80 }, parallel: { ...input().parallel, rolloutGpus: 1, ...over } });

  it("Qwen3-30B-A3B's training state (16 bytes × 30.5B) needs FSDP over at least 9 GPUs of 80 GiB at 90%", () => {
    // Per rank ≈ 488.5e9 / F + 2 GiB reserve + the larger of the backward's transients (7.48e9 gathered: root
    // 4 × 311M, a 623M-parameter MoE block 10 ×; ~0.8e9 activations and logits) and AdamW's foreach temporary
    // (4 × 30.53e9 / F) ≤ 77.3e9 → F ≥ 9; one more GPU for a TP-1 engine (61 GB of bf16 weights).
    const ten = planPlacement(split(10));
    expect([ten.layout.trainerGpus, ten.memoryFits, ten.missing, ten.fits]).toEqual([9, true, [], true]);
    const nine = planPlacement(split(9));
    expect(nine.fits).toBe(false);
    // one rank of 8: 61.06e9 + 2.15e9 + 15.27e9 = 78.5e9 = 73.1 GiB
    expect(nine.reasons).toEqual([expect.stringMatching(/^a trainer rank needs 73\.1 GiB \(AdamW \(\+ fp32 master\) 28\.4 GiB, weights 14\.2 GiB\); 72\.0 GiB usable of 80 GiB$/)]);
    const fit = smallestFit(nine.input)!;
    expect(fit.plan.layout).toMatchObject({ totalGpus: 10, trainerGpus: 9, fsdp: 9 });
    expect(fit.parallel.roles).toBe("split");
  });

  it("one GPU refuses the 30B model with the memory reason, and the smallest fit is not smaller than 10 GPUs", () => {
    const one = planPlacement(input({ cluster: { nodes: 1, gpusPerNode: 1, gpuMemoryGib: 80 }, parallel: { ...input().parallel, roles: "colocated" } }));
    expect(one.fits).toBe(false);
    expect(one.reasons[0]).toBe("the training state alone (fp32 weights, gradients, AdamW) is 455.0 GiB; all 1 GPU(s) together hold 72.0 GiB");
    expect(one.colocated!.total / GIB).toBeGreaterThan(450);
    expect(smallestFit(one.input)!.plan.layout.totalGpus).toBe(10);
  });

  it("sequence parallelism is not built: activations are sized for 1, the plan names it, and it never fits", () => {
    const sp = planPlacement(split(13, { sequenceParallel: 4 })); // 12 trainer GPUs: SP 4 divides them
    expect(sp.trainer.activations).toBe(planPlacement(split(13)).trainer.activations);
    expect(sp.memoryFits).toBe(true);
    expect(sp.fits).toBe(false);
    expect(sp.missing).toEqual([expect.stringMatching(/^parallel.sequence_parallel 4: sequence parallelism is not built.*train.dpo_pair_passes: split/)]);
  });

  it("colocated roles and HSDP replicas are not built; colocated is, for one worker that trains and generates itself", () => {
    const co = planPlacement(split(16, { roles: "colocated", rolloutGpus: 0 }));
    expect(co.memoryFits).toBe(true);
    expect(co.missing).toEqual([expect.stringMatching(/^parallel.roles colocated: not built for separate engines/)]);
    expect(planPlacement({ ...co.input, colocatedBuilt: true }).fits).toBe(true);
    const hsdp = planPlacement(split(17, { fsdp: 8 }));
    expect(hsdp.layout.replicas).toBe(2);
    expect(hsdp.missing).toEqual([expect.stringMatching(/^parallel.fsdp 8 of 16 trainer GPUs: HSDP \(2 replicas\) is not built/)]);
  });

  it("a CPU plan sizes the ranks the run starts (workers.trainer_ranks), with no GPU reserve", () => {
    const cpu = (ranks: number) => planPlacement({ ...input({ cluster: { nodes: 1, gpusPerNode: 0, gpuMemoryGib: 80 } }), model: TOY, trainerRanks: ranks });
    expect(cpu(4).trainer.weights).toBe(TOY_TOTAL); // 4 bytes × P / 4
    expect(cpu(4).trainer.reserve).toBe(0);
    expect(cpu(1).trainer.mapped).toBe(2 * TOY_TOTAL); // bf16 file kept mapped by the single-rank worker
    expect(cpu(4).trainerStartup.total).toBe(1.5 * TOY_TOTAL + 96_000);
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

describe("what the config's processes supply (built-parts.ts)", () => {
  // quickstart's config on a GPU cluster of 2 × 4: split roles, 4 rollout GPUs by default (half), 4 trainer GPUs
  const GPU = ["cluster.gpus_per_node=4", "cluster.nodes=2", "model.device=cuda"];
  const planned = (...sets: string[]) => planExperiment(loadExperiment("experiments/quickstart.yaml", [...GPU, ...sets]).config).plan;

  it("built: worker rollout on as many rollout workers as engines, trainer ranks = trainer GPUs, Ray across nodes", () => {
    const p = planned("engine.type=worker", "workers.count=5", "workers.trainer_ranks=4", "cluster.type=ray", "cluster.ray.gpus_per_worker=1");
    expect([p.layout.engines, p.layout.trainerGpus, p.missing, p.fits]).toEqual([4, 4, [], true]);
  });

  it("names the trainer ranks, local workers across nodes, and the rollout workers when they differ from the plan", () => {
    const p = planned("engine.type=worker", "workers.count=2", "workers.trainer_ranks=1");
    expect(p.fits).toBe(false);
    expect(p.missing).toEqual([
      "workers.trainer_ranks 1: the plan places 4 trainer rank(s) (FSDP 4) but the run would start 1; set workers.trainer_ranks: 4",
      "cluster.type local: local workers run on this host only, not on 2 nodes; use cluster.type: ray",
      "workers.count 2: the plan places 4 engine(s) × TP 1 but the run starts 1 rollout worker(s); set workers.count: 5",
    ]);
  });

  it("names what the engines lack: the vLLM engine count, llama.cpp on GPUs, TP on gRPC workers; placed vLLM servers are built", () => {
    const vllm = planned("workers.trainer_ranks=4", "cluster.type=ray", "cluster.ray.gpus_per_worker=1", "engine.vllm.engines=2");
    expect(vllm.missing).toEqual(["engine.vllm.engines 2: the plan places 4 engine(s) × TP 1; set engine.vllm.engines: 4"]);
    const placed = planned("workers.trainer_ranks=4", "cluster.type=ray", "cluster.ray.gpus_per_worker=1", "engine.vllm.engines=4");
    expect([placed.missing, placed.fits]).toEqual([[], true]);
    expect(placed.notes.join("\n")).toMatch(/vLLM servers as Ray actors, one placement-group bundle each \(\{GPU: 1\}.*GPU bundles, TP > 1 and real hosts have not run/);
    const roles = planned("workers.trainer_ranks=2", "cluster.nodes=1", "engine.vllm.engines=2", "proposer.enabled=true", "proposer.teacher.engine=worker");
    expect(roles.missing).toEqual([expect.stringMatching(/^proposer.prompt_model on vLLM: on one host a role's servers get the same GPUs as the policy's servers/)]);
    const llama = planned("workers.trainer_ranks=4", "cluster.type=ray", "cluster.ray.gpus_per_worker=1", "engine.type=llama_cpp");
    expect(llama.missing).toEqual([expect.stringMatching(/^engine.type llama_cpp: llama-server is built without a GPU backend/)]);
    const tp = planned("workers.trainer_ranks=4", "cluster.type=ray", "cluster.ray.gpus_per_worker=1", "engine.type=worker", "workers.count=3",
      "parallel.rollout_tensor_parallel=2");
    expect(tp.missing).toEqual([expect.stringMatching(/^parallel.rollout_tensor_parallel 2: engine.type worker generates on gRPC workers, one device each/)]);
  });

  it("parallel.activation_checkpointing false is built: no note, larger activations, and the plan says so", () => {
    const withFlag = (v: string) => planExperiment(loadExperiment("experiments/quickstart.yaml", [...GPU, `parallel.activation_checkpointing=${v}`]).config);
    const [on, off] = [withFlag("true"), withFlag("false")];
    expect(off.plan.notes.join("\n")).not.toMatch(/activation_checkpointing/);
    expect(off.plan.trainer.activations).toBeGreaterThan(on.plan.trainer.activations);
    expect(planLines(off).join("\n")).toMatch(/every block's activations kept \(activation_checkpointing false\)/);
    expect(planLines(on).join("\n")).toMatch(/blocks checkpointed/);
  });

  it("a CPU plan names nothing: there is no GPU layout to build", () => {
    const cpu = planExperiment(loadExperiment("experiments/quickstart.yaml", ["workers.trainer_ranks=2", "parallel.sequence_parallel=2"]).config).plan;
    expect([cpu.cpu, cpu.missing]).toEqual([true, []]);
  });
});

describe("a DPO micro-batch's training tokens (train.dpo_pair_passes)", () => {
  const cfgOf = (...sets: string[]) => loadExperiment("experiments/quickstart.yaml", sets).config;
  const tokens = (...sets: string[]) => planExperiment(cfgOf(...sets)).plan.input.workload.trainTokens;
  const cfg = cfgOf();
  const context = cfg.parallel.max_prompt_tokens + cfg.rollout.max_tokens;

  it("joint: a pair is two sequences in one pass; split: one sequence per pass, half the tokens", () => {
    expect(cfg.train.algorithm).toBe("dpo");
    expect(tokens("train.micro_batch_size=3")).toBe(3 * 2 * context);
    expect(tokens("train.micro_batch_size=3", "train.dpo_pair_passes=split")).toBe(3 * context);
  });

  it("under a token cap a pass holds at least one whole row: two sequences jointly, one split", () => {
    expect(tokens("train.max_tokens_per_micro_batch=10")).toBe(2 * context);
    expect(tokens("train.max_tokens_per_micro_batch=10", "train.dpo_pair_passes=split")).toBe(context);
  });

  it("GRPO trains one sequence per item either way", () => {
    const grpo = ["train.algorithm=grpo", "train.micro_batch_size=3"];
    expect(tokens(...grpo, "train.dpo_pair_passes=split")).toBe(tokens(...grpo));
  });
});
