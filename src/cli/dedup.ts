// `promptcot dedup`: exact, near-duplicate and benchmark-overlap removal over a JSONL file of problems.
import type { Command } from "commander";
import { DedupInputError, WORD_RULES, type WordRule, dedupJsonlFile } from "../synthesis/dedup/index.js";

export interface DedupCliOptions {
  in: string;
  out: string;
  field: string;
  threshold: number;
  against: string[];
  report?: string;
  bands?: number;
  rows?: number;
  words: WordRule;
}

function positiveInt(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new DedupInputError(`${flag} must be a positive integer, got '${v}'`, "command line");
    return n;
  };
}

function wordRule(v: string): WordRule {
  if (!(WORD_RULES as readonly string[]).includes(v)) throw new DedupInputError(`--words must be one of ${WORD_RULES.join(", ")}, got '${v}'`, "command line");
  return v as WordRule;
}

function threshold(v: string): number {
  const t = Number(v);
  if (!(t > 0 && t <= 1)) throw new DedupInputError(`--threshold must be a number in (0, 1], got '${v}'`, "command line");
  return t;
}

export async function dedupCommand(o: DedupCliOptions, log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<number> {
  if ((o.bands ?? 1) * (o.rows ?? 1) > 128) throw new DedupInputError("--bands × --rows must be at most 128 (the MinHash permutations)", "command line");
  const s = await dedupJsonlFile({
    inPath: o.in, outPath: o.out, reportPath: o.report, field: o.field, threshold: o.threshold, against: o.against,
    bands: o.bands, rows: o.rows, words: o.words,
  });
  const d = s.dropped;
  log(
    `dedup: ${s.rows} rows, kept ${s.kept}; dropped ${d.exact_duplicate} exact, ${d.near_duplicate} near (Jaccard ≥ ${s.threshold}), ` +
      `${d.contaminated} contaminated (${s.benchmarkItems} benchmark items); LSH ${s.bands}×${s.rowsPerBand}, ${s.candidates} candidates; ` +
      `${s.seconds.toFixed(2)} s, ${Math.round(s.rows / Math.max(s.seconds, 1e-9))} rows/s`,
  );
  return 0;
}

export function registerDedup(program: Command, setCode: (code: number) => void): Command {
  return program
    .command("dedup")
    .description("drop exact and near-duplicate problems and those overlapping benchmarks (JSONL in, kept rows out in order)")
    .requiredOption("--in <file>", "input JSONL")
    .requiredOption("--out <file>", "kept rows, verbatim and in input order (temporary file, then renamed)")
    .option("--field <name>", "the field holding the problem text", "prompt")
    .option("--threshold <t>", "word-set Jaccard at or above which rows are near duplicates", threshold, 0.8)
    .option("--against <files...>", "benchmark JSONL files (a prompt, problem or question per row) to decontaminate against", [])
    .option("--report <file>", "dropped rows with the row or benchmark item each one matches (.json: one object; else JSONL)")
    .option("--bands <n>", "LSH bands (default: chosen for the threshold)", positiveInt("--bands"))
    .option("--rows <n>", "LSH rows per band (default: chosen for the threshold)", positiveInt("--rows"))
    .option("--words <rule>", "what is compared: math (words, numbers and expressions) or promptcot (PromptCoT 2.0's words of 4+ letters)", wordRule, "math")
    .action(async (o: DedupCliOptions) => {
      setCode(await dedupCommand(o));
    });
}
