// `promptcot synth-tests`: synthesize stdin/stdout test cases for code problems with a model, validate them
// against the model's own solutions in the sandbox, journaled in a run directory (a rerun resumes).
import { mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { writeJsonl } from "../experiment/artifacts.js";
import { Journal } from "../experiment/journal.js";
import { createCodeGrader } from "../verify/code/grader.js";
import type { CodeProblem } from "../synthesis/test-cases.js";
import { journaledTestSynthesis } from "../synthesis/test-case-stage.js";
import { guardJournalSettings, parseTeacherEngine, startTeacher, type Teacher } from "./cli-teacher.js";

export interface SynthTestsOptions {
  in: string;
  out: string;
  rounds: number;
  model: string;
  seed: number;
  maxTokens: number;
  temperature: number;
  /** Teacher solutions per problem that validate the tests (0: keep every parsed test unchecked). */
  solutions: number;
  minAgreement: number;
  runDir?: string;
  /** "worker" (default) or "vllm": managed vLLM servers on the model's HF directory. */
  engine: string;
  dtype: string;
}

export function readProblems(path: string): CodeProblem[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .map((line, i) => ({ line, i }))
    .filter(({ line }) => line.trim())
    .map(({ line, i }) => {
      let row: Record<string, unknown>;
      try {
        row = JSON.parse(line) as Record<string, unknown>;
      } catch {
        throw new Error(`${path}:${i + 1}: not valid JSON`);
      }
      if (typeof row.prompt !== "string") throw new Error(`${path}:${i + 1}: each row needs a string 'prompt'`);
      return { ...row, id: typeof row.id === "string" ? row.id : `p${String(i).padStart(5, "0")}`, prompt: row.prompt };
    });
}

export async function synthTestsCommand(o: SynthTestsOptions): Promise<number> {
  const { engine, dtype } = parseTeacherEngine("synth-tests", o.engine, o.dtype);
  const problems = readProblems(o.in);
  const runDir = resolve(o.runDir ?? `${o.out}.run`);
  mkdirSync(runDir, { recursive: true });
  const journal = new Journal(join(runDir, "journal.sqlite"));
  const grader = createCodeGrader({ concurrency: 2 });
  let teacher: Teacher | undefined;
  try {
    const settings: Record<string, unknown> = { model: o.model, seed: o.seed, max_tokens: o.maxTokens, temperature: o.temperature };
    if (engine !== "worker") settings.engine = `${engine}:${dtype}`; // journals written before --engine resume as they were
    guardJournalSettings(journal, runDir, "synth-tests", "tests", settings);
    teacher = await startTeacher({ engine, source: o.model, seed: o.seed, processes: 1, maxModelLen: o.maxTokens + 2048, dtype, runDir, journal, command: "synth-tests" });
    const sampling = { temperature: o.temperature, top_p: 1, max_tokens: o.maxTokens, prompts_per_request: 4 };
    const { problems: kept, stats: s } = await journaledTestSynthesis(problems, teacher.gen, journal, grader, {
      rounds: o.rounds, solutions: o.solutions, seed: o.seed, sampling, minAgreement: o.minAgreement,
    });
    writeJsonl(o.out, kept);
    process.stderr.write(
      `synth-tests: ${problems.length} problems × ${o.rounds} rounds = ${s.generations} generations; parsed ${s.parsed}, malformed ${s.malformed}, ` +
        `duplicates ${s.duplicates}, conflicts ${s.conflicts}; validated with ${o.solutions} teacher solutions per problem: kept ${s.kept_tests} tests, ` +
        `dropped ${s.dropped.disagreement} (disagreement), ${s.dropped.no_passing_solution} (no passing solution), ${s.dropped.sandbox_error} (sandbox error); ` +
        `kept ${s.kept_problems} problems (with ≥1 test), dropped ${s.dropped_problems}; journal ${runDir}\n`,
    );
    return 0;
  } finally {
    await teacher?.close();
    await grader.close();
    journal.close();
  }
}

