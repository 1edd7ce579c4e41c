// `promptcot eval CHECKPOINT --bench NAME -k 16`: see src/eval/bench-eval.ts.
import type { Command } from "commander";
import { ConfigError } from "../config/errors.js";
import { DEFAULT_INSTRUCTION, evalCommand, type EvalOptions } from "../eval/bench-eval.js";

const num = (name: string, int = false) => (v: string): number => {
  const x = Number(v);
  if (!Number.isFinite(x) || (int && !Number.isInteger(x))) throw new ConfigError(`${name} must be ${int ? "a whole number" : "a number"} (got '${v}')`);
  return x;
};
const collect = (v: string, prev: string[]) => [...prev, v];

function kwargs(v: string): Record<string, unknown> {
  try {
    const o = JSON.parse(v) as unknown;
    if (typeof o === "object" && o !== null && !Array.isArray(o)) return o as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new ConfigError(`--chat-template-kwargs must be a JSON object, e.g. '{"enable_thinking": false}' (got '${v}')`);
}

export function registerEval(program: Command, setCode: (code: number) => void): void {
  program
    .command("eval")
    .description("evaluate a checkpoint or model on benchmarks: avg@k, pass@k, maj@k with CIs; journaled, resumable; paired seeds")
    .argument("<checkpoint>", "a run's checkpoints/step-N, a Hugging Face model directory, or a built-in model (smollm2-135m-instruct, tiny-random-llama)")
    .requiredOption("--bench <name|path>", "benchmark name (aime24, aime25, hmmt25, math500, gsm8k, codeforces, …) or a JSONL/JSON file or dataset directory (repeatable)", collect, [])
    .option("-k, --samples <n>", "samples per problem", num("-k", true), 16)
    .option("--temperature <t>", "sampling temperature", num("--temperature"), 0.6)
    .option("--top-p <p>", "nucleus sampling", num("--top-p"), 0.95)
    .option("--top-k <n>", "top-k sampling (0 = off)", num("--top-k", true), 0)
    .option("--max-tokens <n>", "tokens per sample", num("--max-tokens", true), 4096)
    .option("--out <dir>", "eval directory: journal.sqlite, results.jsonl, summary.{json,md} (default evals/<checkpoint>)")
    .option("--label <name>", "checkpoint name in the exported rows (default: the argument as given)")
    .option("--seed <n>", "sampling seed; keep it the same across checkpoints you compare", num("--seed", true), 0)
    .option("--limit <n>", "only the first N problems of each benchmark", num("--limit", true))
    .option("--workers <n>", "generation workers", num("--workers", true), 1)
    .option("--threads <n>", "torch threads per worker on CPU (0 = torch decides)", num("--threads", true), 0)
    .option("--device <d>", "auto | cpu | cuda | cuda:N", "auto")
    .option("--dtype <t>", "float32 | bfloat16", "float32")
    .option("--decode-width <n>", "rows per decode batch on the worker; keep it the same across compared evals", num("--decode-width", true), 8)
    .option("--prompts-per-request <n>", "prompts per Generate call", num("--prompts-per-request", true), 4)
    .option("--system <text>", "system prompt (default none)", "")
    .option("--instruction <text>", "appended to each math problem", DEFAULT_INSTRUCTION)
    .option("--chat-template-kwargs <json>", "chat template keyword arguments, e.g. '{\"enable_thinking\": false}'", kwargs, {})
    .option("--grade-truncated", "count a sample cut at --max-tokens as correct when its answer is (default: never)")
    .option("--grader-timeout-ms <n>", "hard bound on one symbolic math check", num("--grader-timeout-ms", true), 5000)
    .action(async (checkpoint: string, o: Record<string, unknown>) => {
      if (o.dtype !== "float32" && o.dtype !== "bfloat16") throw new ConfigError(`--dtype must be float32 or bfloat16 (got '${String(o.dtype)}')`);
      if ((o.samples as number) < 1) throw new ConfigError("-k must be at least 1");
      const opts: EvalOptions = {
        checkpoint, benches: o.bench as string[], k: o.samples as number, temperature: o.temperature as number, topP: o.topP as number,
        topK: o.topK as number, maxTokens: o.maxTokens as number, out: o.out as string | undefined, seed: o.seed as number,
        workers: o.workers as number, threads: o.threads as number, device: o.device as string, dtype: o.dtype,
        decodeWidth: o.decodeWidth as number, promptsPerRequest: o.promptsPerRequest as number, limit: o.limit as number | undefined,
        system: o.system as string, instruction: o.instruction as string, chatTemplateKwargs: o.chatTemplateKwargs as Record<string, unknown>,
        label: o.label as string | undefined, graderTimeoutMs: o.graderTimeoutMs as number, gradeTruncated: Boolean(o.gradeTruncated),
      };
      setCode(await evalCommand(opts));
    });
}
