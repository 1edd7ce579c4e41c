// The `promptcot` command line. Each command lives in its own module; this file only wires them.
import { Command, CommanderError } from "commander";
import { ConfigError } from "../config/errors.js";
import { runCommand } from "./run.js";
import { statusCommand } from "./status.js";
import { schemaCommand } from "./schema.js";
import { synthTestsCommand } from "./synth-tests.js";
import { traceCommand } from "./trace.js";
import { registerDedup } from "./dedup.js";
import { registerEval } from "./eval.js";
import { registerCompare } from "./compare.js";
import { registerExport } from "./export.js";
import { registerDashboard } from "./dashboard.js";
import { registerReferences } from "./references.js";
import { registerTeacherCheck } from "./teacher-check.js";
import { registerPlan } from "./plan.js";
import { registerGradeMath } from "../verify/math/index.js";
import { registerGradeCode } from "../verify/code/index.js";

const collect = (v: string, prev: string[]) => [...prev, v];

async function main(argv: string[]): Promise<number> {
  const program = new Command("promptcot")
    .description("Self-play RL training orchestrator for LLM reasoning (PromptCoT 2.0)")
    .exitOverride()
    .showHelpAfterError();
  let code = 0;
  program
    .command("run")
    .description("run (or resume) an experiment")
    .argument("<experiment>", "experiment YAML file")
    .option("--set <key.path=value>", "override a config value (repeatable)", collect, [])
    .option("--run-dir <dir>", "run directory (default: runs/<name>/<config hash>)")
    .option("--dry-run", "print the resolved config and plan; start nothing")
    .action(async (file: string, o: { set: string[]; runDir?: string; dryRun?: boolean }) => {
      code = await runCommand(file, o);
    });
  program
    .command("status")
    .description("show what a run has done")
    .argument("<run-dir>")
    .action((dir: string) => {
      code = statusCommand(dir);
    });
  const grade = program.command("grade").description("grade a JSONL file of model outputs (math checker or code sandbox)");
  registerGradeMath(grade);
  registerGradeCode(grade);
  program
    .command("synth-tests")
    .description("synthesize stdin/stdout test cases for code problems (one JSON test per round, PromptCoT 2.0)")
    .requiredOption("--in <file>", "JSONL of problems with a 'prompt' (and optional 'id')")
    .requiredOption("--out <file>", "JSONL: kept problems plus test_cases")
    .option("--rounds <n>", "rounds (one test per round)", (v) => Number(v), 4)
    .option("--model <source>", "model source", "smollm2-135m-instruct")
    .option("--seed <n>", "seed", (v) => Number(v), 0)
    .option("--max-tokens <n>", "tokens per reply", (v) => Number(v), 256)
    .option("--temperature <t>", "sampling temperature", (v) => Number(v), 0.8)
    .option("--solutions <n>", "teacher solutions per problem that validate the tests (0: no validation)", (v) => Number(v), 4)
    .option("--min-agreement <share>", "share of the solutions passing the other tests that must print a test's output", (v) => Number(v), 1)
    .option("--run-dir <dir>", "journal directory (default: <out>.run); rerun with it to resume")
    .option("--engine <engine>", "where the model generates: worker (PyTorch workers) or vllm (a managed vLLM server on its HF directory)", "worker")
    .option("--dtype <dtype>", "vLLM's weights dtype: float32 (as the workers; CPUs without bf16), bfloat16 or auto", "float32")
    .action(async (o) => {
      code = await synthTestsCommand(o);
    });
  registerDedup(program, (c) => (code = c));
  registerEval(program, (c) => (code = c));
  registerCompare(program, (c) => (code = c));
  registerExport(program, (c) => (code = c));
  registerDashboard(program, (c) => (code = c));
  registerReferences(program, (c) => (code = c));
  registerTeacherCheck(program, (c) => (code = c));
  registerPlan(program, (c) => (code = c));
  program
    .command("trace")
    .description("print a problem's history from its run's journal: synthesis (concepts, rationale, weights, seeds, filters, dedup), math reference votes, synthesized tests and their validation")
    .argument("<id>", "problem id: a content hash or a prefix of at least 4 hex digits, or a row id (e.g. p00003) of a references / synth-tests run")
    .option("--run-dir <dir>", "the run that wrote it (default: search runs/*/*)")
    .action((id: string, o: { runDir?: string }) => {
      code = traceCommand(id, o);
    });
  program
    .command("schema")
    .description("write the experiment JSON Schema (for editor completion)")
    .option("--out <file>", "output file", "schema/experiment.schema.json")
    .action((o: { out: string }) => {
      code = schemaCommand(o.out);
    });
  await program.parseAsync(argv);
  return code;
}

main(process.argv).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.format()}\n`);
      process.exit(2);
    }
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    if (process.env.PROMPTCOT_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    process.exit(1);
  },
);
