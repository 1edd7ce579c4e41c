// `promptcot compare A B [C…]`: each later side against the first, per benchmark (see src/eval/compare.ts).
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { ConfigError } from "../config/errors.js";
import { compareResults, type Comparison } from "../eval/compare.js";
import { loadSide } from "../eval/compare-inputs.js";
import { comparisonHtml, comparisonMarkdown } from "../eval/compare-report.js";

export interface CompareCliOptions {
  results: string[];
  json?: boolean;
  out: string;
  allowUnpaired?: boolean;
  seed: number;
}

export function compareCommand(inputs: string[], o: CompareCliOptions): number {
  const args = [...inputs, ...o.results];
  if (args.length < 2) throw new ConfigError("compare needs at least two sides: results files (--results A.jsonl B.jsonl), eval directories, runs or run checkpoints");
  const sides = args.map(loadSide);
  // Two sides with one name (the same model at two settings, say) are told apart by their paths.
  for (const s of sides) if (sides.filter((t) => t.label === s.label).length > 1) s.label = `${s.label} (${s.from})`;
  const comparisons: Comparison[] = sides.slice(1).map((b) =>
    compareResults(sides[0]!.rows, b.rows, { labelA: sides[0]!.label, labelB: b.label, allowUnpaired: o.allowUnpaired, seed: o.seed }));
  const out = resolve(o.out);
  mkdirSync(out, { recursive: true });
  const md = comparisonMarkdown(comparisons);
  writeFileSync(join(out, "compare.md"), md);
  writeFileSync(join(out, "compare.html"), comparisonHtml(comparisons));
  writeFileSync(join(out, "compare.json"), `${JSON.stringify(jsonView(comparisons), null, 2)}\n`);
  process.stdout.write(o.json ? `${JSON.stringify(jsonView(comparisons), null, 2)}\n` : `${md}\nreports: ${join(out, "compare.md")}, ${join(out, "compare.html")}\n`);
  return 0;
}

/** Everything but the per-problem table, which only the plots need. */
function jsonView(cs: Comparison[]) {
  return cs.flatMap((c) => c.benchmarks.map(({ per_problem: _p, ...b }) => ({ ...b, notes: c.notes })));
}

export function registerCompare(program: Command, setCode: (code: number) => void): void {
  program
    .command("compare")
    .description("paired comparison of evals: diff with a bootstrap CI over problems, sign-flip p-value, flipped problems, lengths, power; markdown + HTML report")
    .argument("[sides...]", "eval directories, results .jsonl files, run directories (RUN#N: held-out eval after iteration N) or run checkpoints; the first is the baseline")
    .option("--results <files...>", "results JSONL files (rows {benchmark, problem_id, sample_idx, correct, …})", [])
    .option("--json", "print the comparison as JSON (a_mean, b_mean, diff, ci_low, ci_high, p_value, … per benchmark and pair)")
    .option("--out <dir>", "where compare.md, compare.html and compare.json go", "compare-report")
    .option("--allow-unpaired", "compare only the problems both sides have (said in the report) instead of refusing")
    .option("--seed <n>", "seed of the bootstrap and the sampled sign patterns", (v) => Number(v), 0)
    .action((sides: string[], o: CompareCliOptions) => {
      setCode(compareCommand(sides, o));
    });
}
