// Math references by teacher majority vote (PromptCoT 2.0 labels a synthesized problem with the majority
// answer of 8 teacher samples; its released script votes but never writes the answer back — we do, with
// the agreement ratio). Answers are grouped by the math grader's equivalence, so "\frac{1}{2}", "0.5" and
// "1/2" are one vote. Journaled per (problem, sample) — stage "ref/sample" — and per problem — stage
// "ref/vote" — so a killed run, run again, asks the teacher only for samples it has not journaled.
import { unitSeed } from "../experiment/ids.js";
import type { Journal } from "../experiment/journal.js";
import { MAX_ANSWER, findAnswer } from "../verify/math/extract.js";
import { type Equivalence, majorityVote } from "../verify/math/vote.js";
import type { GenSample, Generator, TeacherSampling } from "./teacher.js";

export interface MathProblem {
  id: string;
  prompt: string;
  [field: string]: unknown;
}

export interface ReferenceOptions {
  /** Teacher samples per problem (paper: 8). */
  samples: number;
  /** Problems whose largest answer class holds a smaller share of the samples are dropped (default 0.5). */
  minAgreement: number;
  seed: number;
  sampling: TeacherSampling;
  /** What follows the problem in the teacher's prompt (default REFERENCE_INSTRUCTION). */
  instruction?: string;
  /** Worked turns shown before each problem (a small teacher copies their answer format). */
  fewShot?: { user: string; assistant: string }[];
}

export interface SampleRecord {
  problem_id: string;
  sample: number;
  text: string;
  finish_reason: string;
  /** The extracted final answer; null when there is none (no box, cut at max_tokens, think block left open). */
  answer: string | null;
}

export interface VoteRecord {
  problem_id: string;
  /** The largest class's first answer as written, or null when no sample answered. */
  answer: string | null;
  /** Its size over all samples (samples without an answer count as votes for nothing). */
  agreement: number;
  samples: number;
  classes: { answer: string; count: number }[];
  kept: boolean;
  teacher: string;
  /** The threshold `kept` was decided with (absent in journals written before it was recorded). */
  min_agreement?: number;
}

export interface ReferenceStats {
  problems: number;
  kept: number;
  /** Dropped because agreement < minAgreement (including problems no sample answered). */
  dropped_low_agreement: number;
  samples_generated: number;
  samples_reused: number;
}

export const SAMPLE_STAGE = "ref/sample";
export const VOTE_STAGE = "ref/vote";

export const sampleUnit = (problemId: string, i: number) => `${SAMPLE_STAGE}/${problemId}/${String(i).padStart(3, "0")}`;
export const voteUnit = (problemId: string) => `${VOTE_STAGE}/${problemId}`;

/** PromptCoT's instruction; a small teacher may need a shorter one (its samples are cut before the box). */
export const REFERENCE_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}.";

/** The teacher's prompt: any worked turns, then the problem and the instruction to box the final answer. */
export function referenceMessages(problem: Pick<MathProblem, "prompt">, instruction = REFERENCE_INSTRUCTION, fewShot: ReferenceOptions["fewShot"] = []) {
  const ask = (text: string) => ({ role: "user" as const, content: `${text.trim()}\n\n${instruction.trim()}` });
  return [...fewShot.flatMap((t) => [ask(t.user), { role: "assistant" as const, content: t.assistant }]), ask(problem.prompt)];
}

/** The answer a teacher sample gives, or null: truncated reasoning is not an answer. */
export function sampleAnswer(s: Pick<GenSample, "text" | "finishReason" | "promptOpensThink">): string | null {
  if (s.finishReason === "length") return null;
  const a = findAnswer(s.text, { promptOpensThink: s.promptOpensThink });
  return a && a.text.trim() !== "" && a.text.length <= MAX_ANSWER ? a.text : null;
}

/** The vote over one problem's answers: the largest equivalence class and its share of all samples. */
export async function voteAnswers(
  answers: ReadonlyArray<string | null>,
  minAgreement: number,
  eq?: Equivalence,
): Promise<Pick<VoteRecord, "answer" | "agreement" | "classes" | "kept">> {
  const v = await majorityVote(answers, eq);
  const agreement = v.answer === null ? 0 : v.share;
  return {
    answer: v.answer,
    agreement,
    classes: v.clusters.map((c) => ({ answer: c.answer, count: c.count })),
    kept: v.answer !== null && agreement >= minAgreement,
  };
}

/** Bad -n or --min-agreement, named, before any teacher starts. */
export function checkReferenceOptions(o: Pick<ReferenceOptions, "samples" | "minAgreement">): void {
  if (!Number.isInteger(o.samples) || o.samples < 1) throw new Error(`references: -n must be a positive integer (got ${o.samples})`);
  if (!(o.minAgreement >= 0 && o.minAgreement <= 1)) throw new Error(`references: --min-agreement must be in [0, 1] (got ${o.minAgreement})`);
}

/** Asks the teacher for every sample not yet journaled; each lands in the journal as it arrives. */
async function sampleStage(problems: readonly MathProblem[], gen: Generator, journal: Journal, o: ReferenceOptions): Promise<number> {
  const requests = problems
    .map((p) => ({
      id: p.id,
      messages: referenceMessages(p, o.instruction, o.fewShot),
      samples: Array.from({ length: o.samples }, (_, i) => ({ index: i, seed: unitSeed(o.seed, "ref", p.id, i) })).filter(
        (s) => !journal.has(sampleUnit(p.id, s.index)),
      ),
    }))
    .filter((r) => r.samples.length > 0);
  if (requests.length === 0) return 0;
  journal.event("ref_generate", { samples: requests.flatMap((r) => r.samples.map((s) => sampleUnit(r.id, s.index))) });
  let added = 0;
  await gen.generate(requests, o.sampling, (s) => {
    const result: SampleRecord = { problem_id: s.id, sample: s.index, text: s.text, finish_reason: s.finishReason, answer: sampleAnswer(s) };
    added += journal.record([{ id: sampleUnit(s.id, s.index), stage: SAMPLE_STAGE, iteration: 0, result }]);
  });
  return added;
}

/** Votes every problem that has all its samples and no vote yet; returns each problem's vote. */
async function voteStage(problems: readonly MathProblem[], journal: Journal, o: ReferenceOptions, teacher: string, eq?: Equivalence) {
  const votes = new Map<string, VoteRecord>();
  for (const p of problems) {
    let v = journal.get<VoteRecord>(voteUnit(p.id));
    if (!v) {
      const answers = Array.from({ length: o.samples }, (_, i) => {
        const s = journal.get<SampleRecord>(sampleUnit(p.id, i));
        if (!s) throw new Error(`references: problem ${p.id} sample ${i} is missing after generation (teacher ${teacher} did not return it)`);
        return s.answer;
      });
      v = { problem_id: p.id, ...(await voteAnswers(answers, o.minAgreement, eq)), samples: o.samples, teacher, min_agreement: o.minAgreement };
      journal.record([{ id: voteUnit(p.id), stage: VOTE_STAGE, iteration: 0, result: v }]);
    }
    votes.set(p.id, v);
  }
  return votes;
}

/**
 * References for `problems`: kept rows carry `answer` (the voted answer) and `answer_agreement`; problems
 * below `minAgreement` are left out and counted. Rerunning over the same journal redoes only missing units.
 */
export async function referenceStage(
  problems: readonly MathProblem[],
  gen: Generator,
  journal: Journal,
  o: ReferenceOptions,
  eq?: Equivalence,
): Promise<{ rows: (MathProblem & { answer: string; answer_agreement: number })[]; stats: ReferenceStats }> {
  checkReferenceOptions(o);
  const before = journal.count(SAMPLE_STAGE);
  const added = await sampleStage(problems, gen, journal, o);
  const votes = await voteStage(problems, journal, o, gen.name, eq);
  const rows = problems.flatMap((p) => {
    const v = votes.get(p.id)!;
    // kept is re-decided here, so a rerun with another --min-agreement reuses the journaled votes
    return v.answer !== null && v.agreement >= o.minAgreement ? [{ ...p, answer: v.answer, answer_agreement: v.agreement }] : [];
  });
  const stats: ReferenceStats = {
    problems: problems.length,
    kept: rows.length,
    dropped_low_agreement: problems.length - rows.length,
    samples_generated: added,
    samples_reused: Math.min(before, problems.length * o.samples),
  };
  return { rows, stats };
}
