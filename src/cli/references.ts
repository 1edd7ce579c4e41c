// `promptcot references`: math references for a JSONL of problems by teacher majority vote, journaled in a
// run directory so a rerun after a kill resumes (see src/synthesis/references.ts).
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { ConfigError } from "../config/errors.js";
import { writeJsonl } from "../experiment/artifacts.js";
import { Journal } from "../experiment/journal.js";
import { createMathGrader } from "../verify/math/grader.js";
import { REFERENCE_INSTRUCTION, checkReferenceOptions, referenceStage } from "../synthesis/references.js";
import { guardJournalSettings, parseTeacherEngine, startTeacher, type Teacher } from "./cli-teacher.js";
import { readProblems } from "./synth-tests.js";

export interface ReferencesOptions {
  in: string;
  out: string;
  teacher: string;
  n: number;
  minAgreement: number;
  runDir?: string;
  seed: number;
  maxTokens: number;
  temperature: number;
  workers: number;
  instruction?: string;
  /** "worker" (default) or "vllm": managed vLLM servers on the teacher's HF directory. */
  engine: string;
  dtype: string;
}

/** What the journaled samples depend on; a rerun on anything else would mix two teachers' votes. */
function identity(o: ReferencesOptions): Record<string, unknown> {
  const input = createHash("sha256").update(readFileSync(o.in)).digest("hex");
  const id: Record<string, unknown> = { input, teacher: o.teacher, n: o.n, seed: o.seed, max_tokens: o.maxTokens, temperature: o.temperature };
  // only a changed instruction is recorded, so journals written before the option resume as they were
  if (o.instruction !== undefined && o.instruction !== REFERENCE_INSTRUCTION) id.instruction = o.instruction;
  // likewise the engine: vLLM's samples are not the worker's for the same seeds
  if (o.engine !== "worker") id.engine = `${o.engine}:${o.dtype}`;
  return id;
}

export async function referencesCommand(o: ReferencesOptions): Promise<number> {
  try {
    checkReferenceOptions({ samples: o.n, minAgreement: o.minAgreement });
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const { engine, dtype } = parseTeacherEngine("references", o.engine, o.dtype);
  const problems = readProblems(o.in);
  const runDir = resolve(o.runDir ?? `${o.out}.run`);
  mkdirSync(runDir, { recursive: true });
  const journal = new Journal(join(runDir, "journal.sqlite"));
  const grader = createMathGrader();
  let teacher: Teacher | undefined;
  try {
    guardJournalSettings(journal, runDir, "references", "references", identity(o));
    teacher = await startTeacher({
      engine, source: o.teacher, seed: o.seed, processes: o.workers, maxModelLen: o.maxTokens + PROMPT_ALLOWANCE, dtype,
      runDir, journal, command: "references",
    });
    const { rows, stats } = await referenceStage(problems, teacher.gen, journal, {
      samples: o.n, minAgreement: o.minAgreement, seed: o.seed, ...(o.instruction !== undefined ? { instruction: o.instruction } : {}),
      sampling: { temperature: o.temperature, top_p: 1, max_tokens: o.maxTokens, prompts_per_request: 4 },
    }, grader);
    writeJsonl(o.out, rows);
    process.stderr.write(
      `references: ${stats.problems} problems × ${o.n} teacher samples (${stats.samples_generated} generated now, ${stats.samples_reused} from the journal); ` +
        `kept ${stats.kept}, dropped ${stats.dropped_low_agreement} below agreement ${o.minAgreement}; journal ${runDir}\n`,
    );
    return 0;
  } finally {
    await teacher?.close();
    await grader.close();
    journal.close();
  }
}

const num = (v: string) => Number(v);
/** Prompt tokens a vLLM server holds beside --max-tokens (the instruction, few-shot turns and the problem). */
const PROMPT_ALLOWANCE = 2048;

export function registerReferences(program: Command, setCode: (c: number) => void): void {
  program
    .command("references")
    .description("math references by teacher majority vote (answers grouped by equivalence), journaled and resumable")
    .requiredOption("--in <file>", "JSONL of problems with a 'prompt' (and optional 'id')")
    .requiredOption("--out <file>", "JSONL: problems that reached the agreement, with 'answer' and 'answer_agreement'")
    .requiredOption("--teacher <source>", "teacher model source (a built-in model name or an HF directory)")
    .option("-n <n>", "teacher samples per problem", num, 8)
    .option("--min-agreement <share>", "drop problems whose majority holds a smaller share of the samples", num, 0.5)
    .option("--run-dir <dir>", "journal directory (default: <out>.run); rerun with it to resume")
    .option("--seed <n>", "seed", num, 0)
    .option("--max-tokens <n>", "tokens per teacher sample", num, 1024)
    .option("--temperature <t>", "sampling temperature", num, 0.7)
    .option("--workers <n>", "teacher worker processes (or vLLM servers with --engine vllm)", num, 1)
    .option("--engine <engine>", "where the teacher generates: worker (PyTorch workers) or vllm (managed vLLM servers on its HF directory)", "worker")
    .option("--dtype <dtype>", "vLLM's weights dtype: float32 (as the workers; CPUs without bf16), bfloat16 or auto", "float32")
    .option("--instruction <text>", "what follows each problem in the teacher's prompt (default: reason step by step, answer in \\boxed{})")
    .action(async (o: ReferencesOptions) => {
      setCode(await referencesCommand(o));
    });
}

