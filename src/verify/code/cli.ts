// `promptcot grade code`: the CLI face of gradeCodeFile. The caller owns the `grade` command and
// passes it here; this adds the `code` subcommand and its options.
import { InvalidArgumentError, type Command } from "commander";
import { gradeCodeFile } from "./grade-file.js";
import type { CodeGraderOptions } from "./options.js";

function positive(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number`);
    return n;
  };
}

interface GradeCodeFlags {
  in: string;
  out: string;
  concurrency?: number;
  timeLimitMs?: number;
  memoryMb?: number;
  float?: "tolerance" | "decimal";
  tolerance?: number;
  progress: boolean;
}

export function registerGradeCode(grade: Command): Command {
  return grade
    .command("code")
    .description("grade programs (fenced code in `completion`, or bare `code`) against stdin/stdout `tests` in a sandbox")
    .requiredOption("--in <file>", "input JSONL: {completion | code, tests: [{input, output}], ...}")
    .requiredOption("--out <file>", "output JSONL: each input row plus verdict, failed_test, stderr")
    .option("--concurrency <n>", "sandboxes at once (default: CPU cores)", positive("--concurrency"))
    .option("--time-limit-ms <ms>", "wall-clock limit per test (default 6000)", positive("--time-limit-ms"))
    .option("--memory-mb <mib>", "address-space limit per process (default 1024)", positive("--memory-mb"))
    .option("--float <mode>", "number comparison: tolerance (default) or decimal (LiveCodeBench exact)", (v: string) => {
      if (v !== "tolerance" && v !== "decimal") throw new InvalidArgumentError("--float must be tolerance or decimal");
      return v;
    })
    .option("--tolerance <x>", "absolute-or-relative float tolerance (default 1e-6)", positive("--tolerance"))
    .option("--no-progress", "no progress display")
    .action(async (flags: GradeCodeFlags) => {
      const grader: CodeGraderOptions = {
        concurrency: flags.concurrency,
        limits: { timeLimitMs: flags.timeLimitMs, memoryMb: flags.memoryMb },
        compare: { float: flags.float, tolerance: flags.tolerance },
      };
      await gradeCodeFile({ inPath: flags.in, outPath: flags.out, progress: flags.progress, grader });
    });
}
