// `promptcot grade code --in FILE --out FILE`: grade a JSONL file of programs. Each output row is its
// input row plus `verdict`, `failed_test`, `stderr` (and `reason` when the row itself is bad), in input
// order. A bad row (invalid JSON, missing or mistyped fields, huge test inputs) becomes verdict "error";
// no row can stop the run. Output goes to a temp file renamed into place at the end.
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { Progress } from "../../telemetry/progress.js";
import type { CodeTest, CodeVerdict, CodeVerdictKind } from "../types.js";
import { checkTests, createCodeGrader } from "./grader.js";
import type { CodeGraderOptions } from "./options.js";

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

const BLANK = /^[ \t\r]*$/;
const VERDICTS: CodeVerdictKind[] = ["AC", "WA", "TLE", "MLE", "RE", "OLE", "no_code", "error"];

export async function gradeCodeFile(o: GradeFileOptions): Promise<GradeFileSummary> {
  const started = Date.now();
  const total = await countRows(o.inPath);
  const tmp = path.join(path.dirname(path.resolve(o.outPath)), `.${path.basename(o.outPath)}.tmp-${process.pid}`);
  const grader = createCodeGrader(o.grader);
  const progressOut = o.out ?? process.stderr;
  const progress = o.progress === false ? null : new Progress("grade code", total, progressOut);
  const counts = Object.fromEntries(VERDICTS.map((v) => [v, 0])) as Record<CodeVerdictKind, number>;
  fs.mkdirSync(path.dirname(tmp), { recursive: true });
  const sink = fs.createWriteStream(tmp);
  let sinkError: Error | null = null;
  sink.on("error", (e) => (sinkError ??= e));
  const window = grader.options.concurrency * 2 + grader.options.warm;
  const done = new Map<number, string>();
  let next = 0; // next row index to write
  let started_ = 0; // rows handed to the grader
  let wake: (() => void) | null = null;
  let failure: Error | null = null;

  const flush = async (): Promise<void> => {
    if (sinkError) throw sinkError;
    while (done.has(next)) {
      const line = done.get(next)!;
      done.delete(next);
      next++;
      if (!sink.write(line)) {
        await new Promise<void>((r) => {
          sink.once("drain", () => r());
          sink.once("error", () => r());
        });
      }
      if (sinkError) throw sinkError;
    }
  };

  try {
    const rl = readline.createInterface({ input: fs.createReadStream(o.inPath), crlfDelay: Infinity });
    const tasks: Promise<void>[] = [];
    let lineNo = 0;
    for await (const text of rl) {
      lineNo++;
      if (BLANK.test(text)) continue;
      const index = started_++;
      const line = lineNo;
      tasks.push(
        gradeRow(text, line, grader.grade.bind(grader), grader.options)
          .then(async (out) => {
            counts[out.verdict]++;
            progress?.tick(1, out.verdict);
            done.set(index, out.json);
            await flush();
          })
          .catch((e: Error) => {
            failure ??= e; // only the output file can fail here; gradeRow never throws
          })
          .finally(() => wake?.()),
      );
      // Bounded memory: at most `window` rows read but not yet written.
      while (started_ - next >= window && !failure) await new Promise<void>((r) => (wake = r));
      if (failure) break;
    }
    await Promise.all(tasks);
    if (failure) throw failure;
    await flush();
    await new Promise<void>((resolve, reject) => sink.end((e?: Error | null) => (e ? reject(e) : resolve())));
    fs.renameSync(tmp, o.outPath);
  } catch (e) {
    sink.destroy();
    fs.rmSync(tmp, { force: true });
    throw e;
  } finally {
    await grader.close();
  }
  const elapsedMs = Date.now() - started;
  const line = summaryLine(started_, counts, elapsedMs);
  progress?.finish();
  progressOut.write(`${line}\n`);
  return { rows: started_, counts, elapsedMs, line };
}

interface RowOutcome {
  verdict: CodeVerdictKind;
  json: string;
}

/** Grade one JSONL line; never throws. */
export async function gradeRow(
  text: string,
  lineNo: number,
  grade: (p: { completion?: string; code?: string }, tests: CodeTest[]) => Promise<CodeVerdict>,
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
    v = await grade(program, r.tests as CodeTest[]);
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

/** Rows = lines with anything but spaces, tabs and CRs (the same rule the reader skips by). */
async function countRows(file: string): Promise<number> {
  let rows = 0;
  let nonBlank = false;
  for await (const chunk of fs.createReadStream(file)) {
    for (const b of chunk as Buffer) {
      if (b === 0x0a) {
        if (nonBlank) rows++;
        nonBlank = false;
      } else if (b !== 0x20 && b !== 0x09 && b !== 0x0d) nonBlank = true;
    }
  }
  return nonBlank ? rows + 1 : rows;
}
