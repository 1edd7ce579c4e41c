// The experiment config schema: the single place where defaults live.
// Every key is strict (unknown keys are errors) so a typo never silently falls back to a default.
import { z } from "zod";

const positiveInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const probability = z.number().min(0).max(1);

export const ModelSchema = z
  .strictObject({
    /** "smollm2-135m-instruct" | "tiny-random-llama" | "tiny-random-qwen2" | a local HF directory. */
    source: z.string().min(1).default("smollm2-135m-instruct"),
    dtype: z.enum(["float32", "bfloat16"]).default("float32"),
    device: z.enum(["auto", "cpu", "cuda"]).default("auto"),
    /** Train only the last N transformer blocks (0 = all). Keeps CPU runs short. */
    trainable_layers: nonNegInt.default(0),
    /** Rows per decode batch on the worker. Fixed so a sample's tokens never depend on its batch-mates;
     *  match it to samples_per_prompt to waste no compute on filler rows. */
    decode_width: positiveInt.default(8),
  })
  .prefault({});

export const WorkersSchema = z
  .strictObject({
    count: positiveInt.default(1),
    startup_timeout_s: z.number().positive().default(600),
    max_restarts: nonNegInt.default(3),
    /** Threads per worker for torch on CPU (0 = let torch decide). */
    threads: nonNegInt.default(0),
  })
  .prefault({});

export const DataSchema = z
  .strictObject({
    /** "arithmetic": the seeded built-in generator; "jsonl": rows with `prompt` and `answer`. */
    kind: z.enum(["arithmetic", "jsonl"]).default("arithmetic"),
    train_size: positiveInt.default(32),
    heldout_size: positiveInt.default(32),
    train_path: z.string().optional(),
    heldout_path: z.string().optional(),
    system_prompt: z
      .string()
      .default("You are a careful math tutor. Solve the problem, then give the final answer as \\boxed{N}."),
    /** Few-shot turns shown before each problem (user/assistant pairs). */
    few_shot: z.array(z.strictObject({ user: z.string(), assistant: z.string() })).default([
      { user: "What is 2 + 3?", assistant: "2 + 3 = 5. The answer is \\boxed{5}." },
    ]),
  })
  .prefault({})
  .refine((d) => d.kind !== "jsonl" || (d.train_path && d.heldout_path), {
    message: "data.kind 'jsonl' needs data.train_path and data.heldout_path",
  });

export const SamplingSchema = z.strictObject({
  samples_per_prompt: positiveInt,
  temperature: z.number().min(0).max(5),
  top_p: z.number().gt(0).max(1).default(1),
  max_tokens: positiveInt,
  stop: z.array(z.string()).default([]),
  /** Prompts per Generate call (each prompt's samples are batched together on the worker). */
  prompts_per_request: positiveInt.default(4),
});

export const PairsSchema = z
  .strictObject({
    /** PromptCoT 2.0 keeps prompts whose pass rate is in (min_pass_rate, max_pass_rate]. */
    min_pass_rate: probability.default(0),
    max_pass_rate: probability.default(0.5),
    max_pairs_per_prompt: positiveInt.optional(),
    /** Extension point: a builtin pair rule ("passrate") or "file.ts#export", a PairBuilder function. */
    builder: z.string().default("passrate"),
  })
  .prefault({});

export const TrainSchema = z
  .strictObject({
    algorithm: z.enum(["dpo"]).default("dpo"),
    learning_rate: z.number().positive().default(5e-6),
    beta: z.number().positive().default(0.1),
    label_smoothing: z.number().min(0).max(0.5).default(0),
    /** Pairs per optimizer step. */
    batch_size: positiveInt.default(8),
    micro_batch_size: positiveInt.default(4),
    epochs: positiveInt.default(1),
    max_grad_norm: z.number().nonnegative().default(1.0),
    weight_decay: z.number().nonnegative().default(0),
  })
  .prefault({});

export const GraderSchema = z
  .strictObject({
    math: z.string().default("full"),
    timeout_ms: positiveInt.default(5000),
  })
  .prefault({});

export const ExperimentSchema = z.strictObject({
  /** Building blocks merged in order before this file's own keys (paths relative to this file). */
  include: z.array(z.string()).default([]),
  name: z.string().regex(/^[A-Za-z0-9._-]+$/, "use letters, digits, '.', '_' or '-'"),
  seed: nonNegInt.default(0),
  iterations: positiveInt.default(1),
  /** Evaluate held-out problems after every N iterations; 0 = only after the last (always also before the first). */
  eval_every: nonNegInt.default(1),
  model: ModelSchema,
  workers: WorkersSchema,
  data: DataSchema,
  rollout: SamplingSchema.prefault({ samples_per_prompt: 4, temperature: 1.0, max_tokens: 96 }),
  eval: SamplingSchema.prefault({ samples_per_prompt: 4, temperature: 0.6, max_tokens: 96 }),
  grader: GraderSchema,
  pairs: PairsSchema,
  train: TrainSchema,
});

export type Experiment = z.output<typeof ExperimentSchema>;
export type Sampling = z.output<typeof SamplingSchema>;
