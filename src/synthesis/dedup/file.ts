// The file side of `promptcot dedup`: JSONL in, kept rows out verbatim (the input line as it was) and in input order, a report of the
// dropped rows. Input is read line by line and output written as it goes; both outputs go to temporary
// files renamed into place only when the whole input was valid, so bad input leaves nothing behind.
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { ConfigError } from "../../config/errors.js";
import { BenchmarkIndex } from "./decontaminate.js";
import type { WordRule } from "./text.js";
import { type DedupOptions, type DedupStats, Deduplicator, type Verdict } from "./dedup.js";

/** Bad input: names the file and line, exits 2. */
export class DedupInputError extends ConfigError {}

const BLANK = /^[ \t\r]*$/;
const BENCHMARK_FIELDS = ["prompt", "problem", "question"];
const MAX_ID = 200;

interface JsonlRow {
  row: Record<string, unknown>;
  line: number;
  raw: string;
}

async function* readJsonl(file: string): AsyncGenerator<JsonlRow> {
  if (!fs.existsSync(file)) throw new DedupInputError("file not found", file);
  const rl = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
  let line = 0;
  for await (const text of rl) {
    line++;
    if (BLANK.test(text)) continue;
    let row: unknown;
    try {
      row = JSON.parse(text);
    } catch (e) {
      throw new DedupInputError(`not valid JSON (${(e as Error).message}); each line must be one JSON object`, file, line);
    }
    if (row === null || typeof row !== "object" || Array.isArray(row)) {
      throw new DedupInputError("each line must be a JSON object", file, line);
    }
    yield { row: row as Record<string, unknown>, line, raw: text.endsWith("\r") ? text.slice(0, -1) : text };
  }
}

function rowId(row: Record<string, unknown>): string | undefined {
  const id = row.id ?? row.idx;
  return typeof id === "string" || typeof id === "number" ? String(id).slice(0, MAX_ID) : undefined;
}

/** Reads benchmark JSONL files (a prompt, problem or question field per row) into one index. */
export async function loadBenchmarks(files: string[], threshold = 0.8, rule: WordRule = "math"): Promise<BenchmarkIndex> {
  const index = new BenchmarkIndex(threshold, 1, rule);
  for (const file of files) {
    for await (const { row, line } of readJsonl(file)) {
      const field = BENCHMARK_FIELDS.find((f) => typeof row[f] === "string");
      if (!field) throw new DedupInputError(`benchmark row needs a string field: one of ${BENCHMARK_FIELDS.join(", ")}`, file, line);
      const id = rowId(row);
      index.add({ file, line, text: row[field] as string, ...(id !== undefined ? { id } : {}) });
    }
  }
  return index;
}

export interface DedupFileOptions extends Omit<DedupOptions, "benchmarks"> {
  inPath: string;
  outPath: string;
  /** Dropped rows: JSONL (one per line), or one JSON object when the name ends in .json. */
  reportPath?: string;
  field?: string;
  against?: string[];
}

export interface DedupFileSummary extends DedupStats {
  seconds: number;
  benchmarkItems: number;
}

class Sink {
  readonly tmp: string;
  private readonly stream: fs.WriteStream;
  private failure: Error | null = null;

  constructor(readonly target: string) {
    this.tmp = path.join(path.dirname(path.resolve(target)), `.${path.basename(target)}.tmp-${process.pid}`);
    fs.mkdirSync(path.dirname(this.tmp), { recursive: true });
    this.stream = fs.createWriteStream(this.tmp);
    this.stream.on("error", (e) => (this.failure ??= e));
  }

  async write(s: string): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.stream.write(s)) await new Promise<void>((r) => (this.stream.once("drain", r), this.stream.once("error", () => r())));
  }

  async commit(): Promise<void> {
    await new Promise<void>((resolve, reject) => this.stream.end((e?: Error | null) => (e ? reject(e) : resolve())));
    if (this.failure) throw this.failure;
  }

  abandon(): void {
    this.stream.destroy();
    fs.rmSync(this.tmp, { force: true });
  }
}

function reportEntry(verdict: Exclude<Verdict, { keep: true }>, index: number, line: number, id: string | undefined): Record<string, unknown> {
  const { keep: _keep, ...rest } = verdict;
  return { index, line, ...(id !== undefined ? { id } : {}), ...rest };
}

export async function dedupJsonlFile(o: DedupFileOptions): Promise<DedupFileSummary> {
  const field = o.field ?? "prompt";
  const t0 = performance.now();
  const benchmarks = o.against?.length ? await loadBenchmarks(o.against, o.threshold, o.words) : undefined;
  const dedup = new Deduplicator({ ...o, benchmarks });
  const asJson = o.reportPath?.endsWith(".json") ?? false;
  const out = new Sink(o.outPath);
  const report = o.reportPath ? new Sink(o.reportPath) : null;
  try {
    if (asJson) await report!.write('{"dropped":[');
    let index = 0;
    let firstDrop = true;
    for await (const { row, line, raw } of readJsonl(o.inPath)) {
      const text = row[field];
      if (typeof text !== "string") {
        throw new DedupInputError(`row has no string field '${field}' (choose the field with --field)`, o.inPath, line);
      }
      const id = rowId(row);
      const verdict = dedup.check(text, { index, line, ...(id !== undefined ? { id } : {}) });
      if (verdict.keep) await out.write(`${raw}\n`);
      else if (report) {
        const entry = JSON.stringify(reportEntry(verdict, index, line, id));
        await report.write(asJson ? `${firstDrop ? "" : ","}\n${entry}` : `${entry}\n`);
        firstDrop = false;
      }
      index++;
    }
    const summary: DedupFileSummary = { ...dedup.stats(), seconds: (performance.now() - t0) / 1000, benchmarkItems: benchmarks?.size ?? 0 };
    if (asJson) await report!.write(`\n],"summary":${JSON.stringify(summary)}}\n`);
    await out.commit();
    await report?.commit();
    fs.renameSync(out.tmp, o.outPath);
    if (report) fs.renameSync(report.tmp, report.target);
    return summary;
  } catch (e) {
    out.abandon();
    report?.abandon();
    throw e;
  }
}
