// `promptcot grade code --in FILE --out FILE`: grade a JSONL file of programs. Each output row is its
// input row plus `verdict`, `failed_test`, `stderr` (and `reason` when the row itself is bad), in input
// order. A bad row (invalid JSON, missing or mistyped fields, huge test inputs) becomes verdict "error";
// no row can stop the run. Output goes to a temp file renamed into place at the end.
import { Progress } from "../../telemetry/progress.js";
import type { CodeTest, CodeVerdict, CodeVerdictKind, GradeContext } from "../types.js";
import { checkTests, createCodeGrader } from "./grader.js";
import type { CodeGraderOptions } from "./options.js";
import { countJsonlRows, mapJsonlFile } from "../jsonl-map.js";

export interface GradeFileOptions {
  inPath: string;
  outPath: string;
  /** Progress on stderr: a bar on a TTY, plain lines otherwise. Default true. */
  progress?: boolean;
  grader?: CodeGraderOptions;
  /** Where progress and the summary line go (default process.stderr). */
  out?: NodeJS.WriteStream;
}

export interface GradeFileSummary {
  rows: number;
  counts: Record<CodeVerdictKind, number>;
  elapsedMs: number;
  /** The one-line summary printed at the end. */
  line: string;
}

const VERDICTS: CodeVerdictKind[] = ["AC", "WA", "TLE", "MLE", "RE", "OLE", "no_code", "error"];

export async function gradeCodeFile(o: GradeFileOptions): Promise<GradeFileSummary> {
  const started = Date.now();
  const total = await countJsonlRows(o.inPath);
  const grader = createCodeGrader(o.grader);
  const progressOut = o.out ?? process.stderr;
  const progress = o.progress === false ? null : new Progress("grade code", total, progressOut);
  const counts = Object.fromEntries(VERDICTS.map((v) => [v, 0])) as Record<CodeVerdictKind, number>;
  let rows: number;
  try {
    rows = await mapJsonlFile({
      inPath: o.inPath,
      outPath: o.outPath,
      window: grader.options.concurrency * 2 + grader.options.warm,
      map: (text, lineNo) => gradeRow(text, lineNo, grader.grade.bind(grader), grader.options),
      onRow: (out) => {
        counts[out.verdict]++;
        progress?.tick(1, out.verdict);
      },
    });
  } finally {
    await grader.close();
  }
  const elapsedMs = Date.now() - started;
  const line = summaryLine(rows, counts, elapsedMs);
  progress?.finish();
  progressOut.write(`${line}\n`);
  return { rows, counts, elapsedMs, line };
}

interface RowOutcome {
  verdict: CodeVerdictKind;
  json: string;
}

/** Grade one JSONL line; never throws. */
export async function gradeRow(
  text: string,
  lineNo: number,
  grade: (p: { completion?: string; code?: string }, tests: CodeTest[], context?: GradeContext) => Promise<CodeVerdict>,
  limits: { maxInputBytes: number },
): Promise<RowOutcome> {
  let row: unknown;
  try {
    row = JSON.parse(text);
  } catch (e) {
    return errorRow({ line: lineNo }, `invalid JSON: ${(e as Error).message.slice(0, 200)}`);
  }
  if (row === null || typeof row !== "object" || Array.isArray(row)) {
    return errorRow({ line: lineNo }, "row is not a JSON object");
  }
  const r = row as Record<string, unknown>;
  const problem = rowProblem(r, limits);
  if (problem) return errorRow(r, problem);
  let v: CodeVerdict;
  try {
    const program = typeof r.code === "string" ? { code: r.code } : { completion: r.completion as string };
    v = await grade(program, r.tests as CodeTest[], { promptOpensThink: r.prompt_opens_think === true });
  } catch (e) {
    v = { verdict: "error", failed_test: null, stderr: "", reason: `grader failure: ${(e as Error).message}` };
  }
  const out: Record<string, unknown> = { ...r, verdict: v.verdict, failed_test: v.failed_test, stderr: v.stderr };
  if (v.verdict === "error") out.reason = v.reason ?? "error";
  return { verdict: v.verdict, json: `${JSON.stringify(out)}\n` };
}

function rowProblem(r: Record<string, unknown>, limits: { maxInputBytes: number }): string | null {
  const hasCode = "code" in r && r.code !== undefined && r.code !== null;
  const hasCompletion = "completion" in r && r.completion !== undefined && r.completion !== null;
  if (!hasCode && !hasCompletion) return "row has neither `completion` nor `code`";
  if (hasCode && typeof r.code !== "string") return "`code` must be a string";
  if (!hasCode && typeof r.completion !== "string") return "`completion` must be a string";
  if (!("tests" in r)) return "row has no `tests`";
  if (r.prompt_opens_think !== undefined && typeof r.prompt_opens_think !== "boolean") return "`prompt_opens_think` must be true or false";
  return checkTests(r.tests, limits);
}

function errorRow(r: Record<string, unknown>, reason: string): RowOutcome {
  const out = { ...r, verdict: "error", failed_test: null, stderr: "", reason };
  return { verdict: "error", json: `${JSON.stringify(out)}\n` };
}

export function summaryLine(rows: number, counts: Record<CodeVerdictKind, number>, elapsedMs: number): string {
  const parts = VERDICTS.filter((v) => counts[v] > 0).map((v) => `${v} ${counts[v]}`);
  const ac = rows ? ((100 * counts.AC) / rows).toFixed(1) : "0.0";
  return `graded ${rows} row(s) in ${(elapsedMs / 1000).toFixed(1)}s: ${parts.join(", ") || "nothing"} (AC ${ac}%)`;
}
