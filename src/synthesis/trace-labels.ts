// `promptcot trace` for the labels a problem got after synthesis: its math reference (the teacher's samples,
// the vote classes, agreement, kept or dropped and why) and its synthesized tests (each round's reply, what
// merging and validation did with each test, and the teacher solutions' sandbox verdicts). Read from the
// journal units `promptcot references` / `synth-tests` (and the whole-pipeline run) write; ids are whatever
// those runs used: content hashes or row ids.
import type { Journal } from "../experiment/journal.js";
import type { CodeTest } from "../verify/types.js";
import { SAMPLE_STAGE, VOTE_STAGE, sampleUnit, voteUnit, type SampleRecord, type VoteRecord } from "./references.js";
import { ROUND_STAGE, SOLUTION_STAGE, roundUnit, solutionUnit, validateUnit, type RoundRecord, type SolutionRecord, type ValidateRecord } from "./test-case-stage.js";
import { mergeTestCases, testKey } from "./test-cases.js";

/** Problem ids with references or tests in this journal that `match` accepts. */
export function labelledIds(journal: Journal, match: (id: string) => boolean): string[] {
  const ids = new Set<string>();
  for (const stage of [VOTE_STAGE, SAMPLE_STAGE, ROUND_STAGE, SOLUTION_STAGE]) {
    for (const row of journal.iterate<{ problem_id?: string }>(stage, 0)) {
      const id = row.result.problem_id;
      if (id !== undefined && match(id)) ids.add(id);
    }
  }
  return [...ids].sort();
}

/** The references and tests sections for one problem id; empty when the journal holds neither. */
export function renderLabels(journal: Journal, id: string): string[] {
  return [...renderReference(journal, id), ...renderTests(journal, id)];
}

const show = (s: string, max = 60) => JSON.stringify(s.length > max ? `${s.slice(0, max - 3)}...` : s);
const pct = (x: number) => `${(100 * x).toFixed(0)}%`;

function journaledSamples<T>(journal: Journal, unit: (i: number) => string): (T | undefined)[] {
  const out: (T | undefined)[] = [];
  // samples are numbered from 0; a missing one ends the run of journaled units unless a later one exists
  for (let i = 0, misses = 0; misses < 2; i++) {
    const r = journal.get<T>(unit(i));
    out.push(r);
    misses = r ? 0 : misses + 1;
  }
  while (out.length && out.at(-1) === undefined) out.pop();
  return out;
}

function renderReference(journal: Journal, id: string): string[] {
  const vote = journal.get<VoteRecord>(voteUnit(id));
  const samples = journaledSamples<SampleRecord>(journal, (i) => sampleUnit(id, i));
  if (!vote && samples.length === 0) return [];
  const lines = ["", `math reference (teacher majority vote${vote ? `, teacher ${vote.teacher}` : ""}):`];
  samples.forEach((s, i) => {
    if (!s) return lines.push(`  sample ${i}: not journaled yet`);
    const why = s.finish_reason === "length" ? "no answer (cut at max_tokens)" : "no answer (no boxed answer after the reasoning)";
    lines.push(`  sample ${i}: ${s.answer === null ? why : `answer ${show(s.answer)}`}`);
  });
  if (!vote) return [...lines, "  vote: not taken yet (samples missing; rerun the references command to finish)"];
  const answered = vote.classes.reduce((a, c) => a + c.count, 0);
  const classes = vote.classes.map((c) => `${show(c.answer)} ×${c.count}`).join(", ") || "none";
  lines.push(
    `  vote classes (answers grouped by mathematical equivalence): ${classes}${vote.samples > answered ? `; no answer ×${vote.samples - answered}` : ""}`,
    `  agreement: ${vote.answer === null ? 0 : Math.round(vote.agreement * vote.samples)} of ${vote.samples} samples (${pct(vote.agreement)})`,
  );
  const min = vote.min_agreement === undefined ? "the minimum agreement" : `the minimum agreement ${pct(vote.min_agreement)}`;
  if (vote.kept) lines.push(`  KEPT: reference answer ${show(vote.answer!)} (agreement at or above ${min})`);
  else lines.push(`  DROPPED: ${vote.answer === null ? "no sample gave an answer" : `agreement ${pct(vote.agreement)} is below ${min}`}`);
  return lines;
}

function renderTests(journal: Journal, id: string): string[] {
  const rounds = journaledSamples<RoundRecord>(journal, (r) => roundUnit(id, r));
  const solutions = journaledSamples<SolutionRecord>(journal, (i) => solutionUnit(id, i));
  const v = journal.get<ValidateRecord>(validateUnit(id));
  if (rounds.length === 0 && solutions.length === 0 && !v) return [];
  const parsed = rounds.map((r) => r?.test ?? null);
  const merged = mergeTestCases(parsed.filter((t): t is CodeTest => t !== null)).tests;
  const lines = ["", `synthesized tests (${rounds.length} round${rounds.length === 1 ? "" : "s"}, one test per round):`];
  lines.push(...roundLines(rounds, merged));
  const programs = solutions.flatMap((s, i) => (s?.code ? [i] : []));
  lines.push(`  teacher solutions: ${solutions.length}, ${programs.length} with a program` +
    (solutions.length > programs.length ? ` (${solutions.filter((s) => s && !s.code).map((s) => `#${s!.sample} ${s!.finish_reason === "length" ? "cut at max_tokens" : "no code block"}`).join(", ")})` : ""));
  if (!v) return [...lines, "  validation: not run yet (rerun synth-tests to finish)"];
  lines.push(`  validation against the solutions in the sandbox (${v.candidates} parsed, ${v.duplicates} duplicate, ${v.conflicts} conflicting input(s) dropped):`);
  merged.forEach((t, i) => {
    const dropped = v.dropped.find((d) => testKey(d.test) === testKey(t));
    const kept = v.kept.some((k) => testKey(k) === testKey(t));
    const status = kept ? "KEPT" : dropped ? `DROPPED (${dropped.reason}: ${dropped.detail})` : "unchecked";
    const verdicts = v.verdicts.map((row, s) => `#${programs[s] ?? s} ${row[i] ?? "-"}`).join(", ");
    lines.push(`    test ${i} ${show(t.input, 30)} -> ${show(t.output, 30)}: ${status}${verdicts ? `; solutions: ${verdicts}` : ""}`);
  });
  lines.push(`  ${v.kept.length > 0 ? `problem KEPT with ${v.kept.length} test(s)` : "problem DROPPED: no test survived"}`);
  return lines;
}

/** Each round's reply: the test it parsed to, and whether merging kept it, folded it into a duplicate or dropped it. */
function roundLines(rounds: (RoundRecord | undefined)[], merged: CodeTest[]): string[] {
  const firstRound = new Map<string, number>();
  return rounds.map((r, i) => {
    if (!r) return `  round ${i}: not journaled yet`;
    if (!r.test) return `  round ${i}: malformed (no fenced JSON test with string input and output)`;
    const k = testKey(r.test);
    const m = merged.findIndex((t) => testKey(t) === k);
    const where = m < 0 ? "conflicting input: another round gave this input another output, both dropped"
      : firstRound.has(k) ? `duplicate of round ${firstRound.get(k)}` : `test ${m}`;
    if (!firstRound.has(k)) firstRound.set(k, i);
    return `  round ${i}: ${show(r.test.input, 30)} -> ${show(r.test.output, 30)} (${where})`;
  });
}
