// A model's shape: what the placement planner needs to size weights, optimizer state, activations and KV
// cache. Known models are presets; any other comes from its Hugging Face config.json.
import { existsSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { basename, join, resolve } from "node:path";
import { ConfigError } from "../config/errors.js";

export interface ModelShape {
  name: string;
  /** Where the numbers came from, for the plan's header. */
  from: string;
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Dense MLP width (layers without experts). */
  intermediate: number;
  /** 0 = dense model. */
  experts: number;
  expertsPerToken: number;
  moeIntermediate: number;
  /** Layers whose MLP is the expert mixture (the rest are dense). */
  moeLayers: number;
  /** Width of an always-on shared expert in MoE layers (Qwen2-MoE); 0 = none. */
  sharedExpertIntermediate: number;
  tiedEmbeddings: boolean;
  /** q, k and v projections carry biases (Qwen2). */
  qkvBias: boolean;
  /** Per-head RMSNorm on q and k (Qwen3). */
  qkNorm: boolean;
  maxPositions: number;
}

type Preset = Omit<ModelShape, "from">;

const dense = (s: Omit<Preset, "experts" | "expertsPerToken" | "moeIntermediate" | "moeLayers" | "sharedExpertIntermediate">): Preset => ({
  ...s, experts: 0, expertsPerToken: 0, moeIntermediate: 0, moeLayers: 0, sharedExpertIntermediate: 0,
});

// Numbers from each model's published config.json on the Hugging Face Hub (read through copies that name
// their origin, e.g. `"_name_or_path": "Qwen/Qwen2.5-7B-Instruct"`, and vLLM's Qwen3-MoE test config):
//   Qwen/Qwen3-30B-A3B   hidden_size 2048, num_hidden_layers 48, num_attention_heads 32, num_key_value_heads 4,
//                        head_dim 128, num_experts 128, num_experts_per_tok 8, moe_intermediate_size 768,
//                        intermediate_size 6144 (unused: decoder_sparse_step 1, mlp_only_layers []),
//                        vocab_size 151936, tie_word_embeddings false, max_position_embeddings 40960
//   Qwen/Qwen3-4B        hidden_size 2560, num_hidden_layers 36, num_attention_heads 32, num_key_value_heads 8,
//                        head_dim 128, intermediate_size 9728, vocab_size 151936, tie_word_embeddings true,
//                        max_position_embeddings 40960
//   Qwen/Qwen2.5-7B(-Instruct) hidden_size 3584, num_hidden_layers 28, num_attention_heads 28,
//                        num_key_value_heads 4, intermediate_size 18944, vocab_size 152064,
//                        tie_word_embeddings false, max_position_embeddings 131072 (base) / 32768 (Instruct)
//   Qwen/Qwen2.5-32B     hidden_size 5120, num_hidden_layers 64, num_attention_heads 40, num_key_value_heads 8,
//                        intermediate_size 27648, vocab_size 152064, tie_word_embeddings false, max_position_embeddings 131072
//                        (the prompt-synthesis models of experiments/synthesis-paper.yaml)
//   SmolLM2-135M-Instruct hidden_size 576, num_hidden_layers 30, num_attention_heads 9, num_key_value_heads 3,
//                        intermediate_size 1536, vocab_size 49152, tie_word_embeddings true, max_position_embeddings 8192
// Their parameter counts from these shapes (paramCounts) match the published 30.5B (3.3B active), 4.0B,
// 7.61B, 32.5B and 135M; test/planner.test.ts checks that.
const QWEN3_30B_A3B: Preset = {
  name: "Qwen3-30B-A3B", vocab: 151936, hidden: 2048, layers: 48, heads: 32, kvHeads: 4, headDim: 128, intermediate: 6144,
  experts: 128, expertsPerToken: 8, moeIntermediate: 768, moeLayers: 48, sharedExpertIntermediate: 0,
  tiedEmbeddings: false, qkvBias: false, qkNorm: true, maxPositions: 40960,
};
const QWEN3_4B = dense({
  name: "Qwen3-4B", vocab: 151936, hidden: 2560, layers: 36, heads: 32, kvHeads: 8, headDim: 128, intermediate: 9728,
  tiedEmbeddings: true, qkvBias: false, qkNorm: true, maxPositions: 40960,
});
const QWEN25_7B = dense({
  name: "Qwen2.5-7B", vocab: 152064, hidden: 3584, layers: 28, heads: 28, kvHeads: 4, headDim: 128, intermediate: 18944,
  tiedEmbeddings: false, qkvBias: true, qkNorm: false, maxPositions: 131072,
});
const QWEN25_32B = dense({
  name: "Qwen2.5-32B", vocab: 152064, hidden: 5120, layers: 64, heads: 40, kvHeads: 8, headDim: 128, intermediate: 27648,
  tiedEmbeddings: false, qkvBias: true, qkNorm: false, maxPositions: 131072,
});
const SMOLLM2_135M = dense({
  name: "SmolLM2-135M-Instruct", vocab: 49152, hidden: 576, layers: 30, heads: 9, kvHeads: 3, headDim: 64, intermediate: 1536,
  tiedEmbeddings: true, qkvBias: false, qkNorm: false, maxPositions: 8192,
});
// The worker's tiny random models (python-workers/promptcot_worker/models.py TINY_CONFIGS; SmolLM2's vocabulary).
const TINY = { vocab: 49152, hidden: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 16, intermediate: 128, tiedEmbeddings: true, maxPositions: 2048 };

/** Keyed by lower-case name: a worker built-in name, or a model directory's base name (Hub repo name). */
export const MODEL_PRESETS: Record<string, Preset> = {
  "qwen3-30b-a3b": QWEN3_30B_A3B,
  "qwen3-4b": QWEN3_4B,
  // The paper's self-play policies: the same shapes, native context 262,144 (their config.json).
  "qwen3-30b-a3b-thinking-2507": { ...QWEN3_30B_A3B, name: "Qwen3-30B-A3B-Thinking-2507", maxPositions: 262144 },
  "qwen3-4b-thinking-2507": { ...QWEN3_4B, name: "Qwen3-4B-Thinking-2507", maxPositions: 262144 },
  "qwen2.5-7b": QWEN25_7B,
  "qwen2.5-7b-instruct": { ...QWEN25_7B, name: "Qwen2.5-7B-Instruct", maxPositions: 32768 },
  "qwen2.5-32b": QWEN25_32B,
  "smollm2-135m-instruct": SMOLLM2_135M,
  "tiny-random-llama": dense({ ...TINY, name: "tiny-random-llama", qkvBias: false, qkNorm: false }),
  "tiny-random-qwen2": dense({ ...TINY, name: "tiny-random-qwen2", qkvBias: true, qkNorm: false }),
  "tiny-random-qwen3": dense({ ...TINY, name: "tiny-random-qwen3", qkvBias: false, qkNorm: true }),
};

/** Parameters of one transformer block's attention (projections, biases, norms). */
function attentionParams(s: ModelShape): number {
  const q = s.heads * s.headDim;
  const kv = s.kvHeads * s.headDim;
  const proj = s.hidden * (q + 2 * kv) + q * s.hidden;
  return proj + (s.qkvBias ? q + 2 * kv : 0) + (s.qkNorm ? 2 * s.headDim : 0) + 2 * s.hidden;
}

/** SwiGLU MLP: gate, up and down projections. */
const mlp = (h: number, i: number) => 3 * h * i;

function moeMlpParams(s: ModelShape, experts: number): number {
  const shared = s.sharedExpertIntermediate ? mlp(s.hidden, s.sharedExpertIntermediate) + s.hidden : 0;
  return experts * mlp(s.hidden, s.moeIntermediate) + s.hidden * s.experts + shared;
}

export interface ParamCounts {
  total: number;
  /** Parameters one token passes through (MoE: its routed experts only). */
  active: number;
  /** The largest block (FSDP gathers one at a time), or the embedding when that is larger. */
  largestUnit: number;
  embedding: number;
  /** The largest single tensor, and whether it is a MoE layer's fused experts (transformers keeps a layer's
   *  experts as one [experts, 2 × width, hidden] gate/up tensor; checkpoints store them per expert). */
  largestTensor: number;
  largestIsFusedExperts: boolean;
  /** Parameters of all routed experts (the fused tensors). */
  expertParams: number;
  /** Parameters of each block, first to last. */
  perLayer: number[];
}

export function paramCounts(s: ModelShape): ParamCounts {
  const embedding = s.vocab * s.hidden;
  const head = s.tiedEmbeddings ? 0 : embedding;
  const attn = attentionParams(s);
  const denseLayer = attn + mlp(s.hidden, s.intermediate);
  const moeLayer = attn + moeMlpParams(s, s.experts);
  const moeActive = attn + moeMlpParams(s, s.expertsPerToken);
  const denseLayers = s.layers - s.moeLayers;
  const perLayer = Array.from({ length: s.layers }, (_, i) => (i >= denseLayers ? moeLayer : denseLayer));
  const blocks = perLayer.reduce((a, b) => a + b, 0);
  const total = embedding + head + blocks + s.hidden;
  const active = embedding + head + denseLayers * denseLayer + s.moeLayers * moeActive + s.hidden;
  const fused = s.moeLayers ? s.experts * 2 * s.moeIntermediate * s.hidden : 0;
  const plain = Math.max(embedding, s.moeLayers < s.layers ? s.intermediate * s.hidden : 0, s.heads * s.headDim * s.hidden);
  return {
    total, active, largestUnit: Math.max(embedding, ...perLayer), embedding, perLayer,
    largestTensor: Math.max(fused, plain), largestIsFusedExperts: fused > plain,
    expertParams: s.moeLayers * s.experts * mlp(s.hidden, s.moeIntermediate),
  };
}

type Json = Record<string, unknown>;

/** The shape from a Hugging Face config.json (Llama, Qwen2, Qwen3, Qwen2/3-MoE, Mixtral spellings). */
export function shapeFromHfConfig(cfg: Json, from: string, name: string): ModelShape {
  const num = (key: string, fallback?: number): number => {
    const v = cfg[key];
    if (typeof v === "number" && Number.isFinite(v)) return v;
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw new ConfigError(`${from} has no "${key}", which the placement plan needs; is it a causal LM's config.json?`, undefined, undefined, "model.source");
    }
    throw new ConfigError(`${from}: "${key}" is ${JSON.stringify(v)}, not a number`, undefined, undefined, "model.source");
  };
  const hidden = num("hidden_size");
  const heads = num("num_attention_heads");
  const layers = num("num_hidden_layers");
  const experts = num("num_experts", num("num_local_experts", num("n_routed_experts", 0)));
  const step = num("decoder_sparse_step", 1);
  const mlpOnly = new Set(Array.isArray(cfg.mlp_only_layers) ? (cfg.mlp_only_layers as number[]) : []);
  const moeLayers = experts === 0 ? 0 : Array.from({ length: layers }, (_, i) => i).filter((i) => !mlpOnly.has(i) && (i + 1) % step === 0).length;
  const modelType = typeof cfg.model_type === "string" ? cfg.model_type : "";
  return {
    name, from, vocab: num("vocab_size"), hidden, layers, heads,
    kvHeads: num("num_key_value_heads", heads),
    headDim: num("head_dim", hidden / heads),
    intermediate: num("intermediate_size", 0),
    experts,
    expertsPerToken: experts ? num("num_experts_per_tok") : 0,
    moeIntermediate: experts ? num("moe_intermediate_size", num("intermediate_size")) : 0,
    moeLayers,
    sharedExpertIntermediate: experts ? num("shared_expert_intermediate_size", 0) : 0,
    tiedEmbeddings: cfg.tie_word_embeddings === true,
    qkvBias: cfg.attention_bias === true || cfg.qkv_bias === true || (modelType === "qwen2" || modelType === "qwen2_moe"),
    qkNorm: modelType.startsWith("qwen3"),
    maxPositions: num("max_position_embeddings", 0),
  };
}

/**
 * The shape of `model.source`: a local directory's config.json when the directory is here; else a preset
 * by name (a worker built-in, or the directory's base name, so a recipe naming /models/Qwen3-30B-A3B plans
 * on a machine without the weights).
 */
export function resolveModelShape(source: string): ModelShape {
  const preset = MODEL_PRESETS[source.toLowerCase()];
  if (preset) return { ...preset, from: "preset (built-in model)" };
  // Resolved as the run resolves it (src/experiment/run-identity.ts): against the current directory.
  const dir = resolve(source.replace(/^~(?=$|\/)/, homedir()));
  const file = join(dir, "config.json");
  if (existsSync(dir) && statSync(dir).isDirectory() && existsSync(file)) {
    let cfg: Json;
    try {
      cfg = JSON.parse(readFileSync(file, "utf8")) as Json;
    } catch (e) {
      throw new ConfigError(`${file} is not valid JSON: ${(e as Error).message}`, undefined, undefined, "model.source");
    }
    return shapeFromHfConfig(cfg, file, basename(dir));
  }
  const byName = MODEL_PRESETS[basename(dir).toLowerCase()];
  if (byName) return { ...byName, from: `preset by directory name (${dir} is not on this machine; published config.json values)` };
  throw new ConfigError(
    `cannot tell the shape of model ${source}: ${existsSync(dir) ? `${file} does not exist` : `${dir} does not exist`} and its name is not a preset ` +
      `(${Object.values(MODEL_PRESETS).map((p) => p.name).join(", ")}); point model.source at a Hugging Face model directory with a config.json`,
    undefined,
    undefined,
    "model.source",
  );
}
