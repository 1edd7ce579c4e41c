// `promptcot grade math --in FILE --out FILE`: grades a JSONL file of {completion, answer} rows.
// Each output row is its input row plus `verdict` and `extracted` (and `reason` when there is one), in
// input order. A bad row (invalid JSON, missing or mistyped field) becomes a verdict "error" row; the
// command never stops on one. Output goes to a temporary file that is renamed into place at the end.
import type { Command } from "commander";
import { Progress } from "../../telemetry/progress.js";
import { countJsonlRows, mapJsonlFile } from "../jsonl-map.js";
import type { MathVerdict, MathVerdictKind } from "../types.js";
import { type FullMathGrader, createMathGrader } from "./grader.js";

export interface GradeFileOptions {
  inPath: string;
  outPath: string;
  /** Progress bar on a TTY, plain lines otherwise. */
  progress: boolean;
  /** Bound for the symbolic work of one row (ms). */
  timeoutMs?: number;
  /** Python grader processes. */
  workers?: number;
  /** Rows graded at once (default 4 per worker). */
  concurrency?: number;
  /** Use this grader instead of creating one (it is not closed). */
  grader?: FullMathGrader;
  /** Where the summary line goes (default stdout). */
  log?: (line: string) => void;
}

export type GradeFileSummary = Record<MathVerdictKind, number> & { rows: number; seconds: number };

type Row = Record<string, unknown>;

function badRow(base: Row, reason: string): Row {
  return { ...base, verdict: "error", extracted: null, reason };
}

async function gradeLine(line: string, grader: FullMathGrader): Promise<Row> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (e) {
    return badRow({ raw: line }, `invalid JSON: ${(e as Error).message}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    return badRow({ raw: line }, "row is not a JSON object");
  }
  const row = parsed as Row;
  const { completion, answer } = row;
  if (completion === undefined) return badRow(row, "missing field: completion");
  if (answer === undefined) return badRow(row, "missing field: answer");
  if (typeof completion !== "string") return badRow(row, "completion must be a string");
  // numeric references (GSM8K-style {"answer": 72}) are accepted; anything else must be text
  const ref = typeof answer === "number" && Number.isFinite(answer) ? String(answer) : answer;
  if (typeof ref !== "string") return badRow(row, "answer must be a string");
  const opensThink = row.prompt_opens_think;
  if (opensThink !== undefined && typeof opensThink !== "boolean") return badRow(row, "prompt_opens_think must be true or false");
  let v: MathVerdict;
  try {
    v = await grader.grade(completion, ref, { promptOpensThink: opensThink === true });
  } catch (e) {
    v = { verdict: "error", extracted: null, reason: `grader failure: ${(e as Error).message}` };
  }
  const out: Row = { ...row, verdict: v.verdict, extracted: v.extracted };
  if (v.reason !== undefined) out.reason = v.reason;
  else delete out.reason;
  return out;
}

export async function gradeMathFile(opts: GradeFileOptions): Promise<GradeFileSummary> {
  const started = Date.now();
  const grader = opts.grader ?? createMathGrader({ timeoutMs: opts.timeoutMs, poolSize: opts.workers });
  const width = Math.max(1, opts.concurrency ?? 4 * (opts.workers ?? 2));
  const summary: GradeFileSummary = { rows: 0, correct: 0, incorrect: 0, no_answer: 0, timeout: 0, error: 0, seconds: 0 };
  const progress = opts.progress ? new Progress("grade math", await countJsonlRows(opts.inPath)) : null;
  try {
    summary.rows = await mapJsonlFile({
      inPath: opts.inPath,
      outPath: opts.outPath,
      window: width,
      map: async (line) => {
        const row = await gradeLine(line, grader);
        return { row, json: `${JSON.stringify(row)}\n` };
      },
      onRow: ({ row }) => {
        summary[row.verdict as MathVerdictKind]++;
        progress?.tick(1);
      },
    });
  } finally {
    progress?.finish();
    if (!opts.grader) await grader.close();
  }
  summary.seconds = (Date.now() - started) / 1000;
  const graded = summary.correct + summary.incorrect + summary.no_answer;
  const acc = graded ? ((100 * summary.correct) / summary.rows).toFixed(1) : "0.0";
  (opts.log ?? ((l: string) => process.stdout.write(`${l}\n`)))(
    `graded ${summary.rows} rows in ${summary.seconds.toFixed(1)}s: ${summary.correct} correct (${acc}%), ` +
      `${summary.incorrect} incorrect, ${summary.no_answer} no_answer, ${summary.timeout} timeout, ${summary.error} error -> ${opts.outPath}`,
  );
  return summary;
}

/** Adds `math` under the CLI's `grade` command. */
export function registerGradeMath(grade: Command): Command {
  return grade
    .command("math")
    .description("grade a JSONL file of {completion, answer} rows; writes each row plus verdict and extracted")
    .requiredOption("--in <file>", "input JSONL")
    .requiredOption("--out <file>", "output JSONL (written to a temporary file, then renamed)")
    .option("--timeout-ms <ms>", "hard bound for the symbolic check of one row", (v) => Number(v), 5000)
    .option("--workers <n>", "Python grader processes", (v) => Number(v), 2)
    .option("--no-progress", "no progress display")
    .action(async (o: { in: string; out: string; timeoutMs: number; workers: number; progress: boolean }) => {
      await gradeMathFile({ inPath: o.in, outPath: o.out, progress: o.progress, timeoutMs: o.timeoutMs, workers: o.workers });
    });
}
