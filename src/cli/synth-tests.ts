// `promptcot synth-tests`: synthesize stdin/stdout test cases for code problems with a model.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WorkerPool } from "../cluster/pool.js";
import { writeJsonl } from "../experiment/artifacts.js";
import { synthesizeTestCases, type CodeProblem } from "../synthesis/test-cases.js";
import { workerGenerate } from "../synthesis/test-case-stage.js";

export interface SynthTestsOptions {
  in: string;
  out: string;
  rounds: number;
  model: string;
  seed: number;
  maxTokens: number;
  temperature: number;
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
  const problems = readProblems(o.in);
  const pool = new WorkerPool(1, {
    modelSource: o.model, dtype: "float32", device: "auto", trainableLayers: 0, decodeWidth: 1, seed: o.seed, threads: 0,
    startupTimeoutS: 600, logDir: mkdtempSync(join(tmpdir(), "promptcot-synth-")),
  }, 3);
  try {
    await pool.start();
    const generate = workerGenerate(pool, { temperature: o.temperature, top_p: 1, max_tokens: o.maxTokens, prompts_per_request: 4 });
    const result = await synthesizeTestCases(problems, o.rounds, generate, { seed: o.seed });
    writeJsonl(o.out, result.problems);
    const s = result.stats;
    process.stderr.write(
      `synth-tests: ${problems.length} problems × ${o.rounds} rounds = ${s.prompts} generations; parsed ${s.parsed}, malformed ${s.malformed}, ` +
        `duplicates ${s.duplicates}, conflicts ${s.conflicts}; kept ${s.keptProblems} problems (with ≥1 test), dropped ${s.droppedProblems}\n`,
    );
    return 0;
  } finally {
    await pool.stop();
  }
}
