// How far a teacher's majority vote can be trusted, measured on problems with known answers: for each vote
// setting (the first k samples of each problem, an agreement threshold) how many references are kept and
// what share of the kept ones are right. One teacher run at the largest k gives every smaller k, since a
// problem's samples are drawn with fixed per-sample seeds.
import { wilson } from "./proposer-pairs.js";
import { voteAnswers } from "./references.js";
import type { Equivalence } from "../verify/math/vote.js";

export interface KnownProblem {
  id: string;
  /** The teacher's extracted answer per sample, in sample order (null: no answer). */
  answers: (string | null)[];
  known: string;
}

export interface PrecisionRow {
  samples: number;
  min_agreement: number;
  problems: number;
  kept: number;
  right: number;
  /** right / kept; NaN when nothing is kept. */
  precision: number;
  ci: { lo: number; hi: number };
}

/** Votes each setting over the problems; `isRight(voted, known)` decides a kept reference's correctness. */
export async function precisionTable(
  problems: KnownProblem[], ks: number[], thresholds: number[], isRight: (voted: string, known: string) => Promise<boolean>, eq?: Equivalence,
): Promise<PrecisionRow[]> {
  const rows: PrecisionRow[] = [];
  for (const k of ks) {
    for (const t of thresholds) {
      let kept = 0;
      let right = 0;
      for (const p of problems) {
        if (p.answers.length < k) throw new Error(`teacher precision: problem ${p.id} has ${p.answers.length} samples, fewer than ${k}`);
        const v = await voteAnswers(p.answers.slice(0, k), t, eq);
        if (!v.kept || v.answer === null) continue;
        kept++;
        if (await isRight(v.answer, p.known)) right++;
      }
      rows.push({ samples: k, min_agreement: t, problems: problems.length, kept, right, precision: kept ? right / kept : NaN, ci: wilson(right, kept) });
    }
  }
  return rows;
}

const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(0)}%` : "n/a");

export function renderPrecisionTable(rows: PrecisionRow[]): string {
  const lines = ["| samples | min agreement | kept / problems | right / kept | precision [95% CI] |", "| --- | --- | --- | --- | --- |"];
  for (const r of rows) lines.push(`| ${r.samples} | ${r.min_agreement} | ${r.kept} / ${r.problems} | ${r.right} / ${r.kept} | ${pct(r.precision)} [${pct(r.ci.lo)}, ${pct(r.ci.hi)}] |`);
  return lines.join("\n");
}
