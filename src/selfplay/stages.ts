// The self-play stages between rollout and update: grading and pair building.
import type { RunContext } from "../experiment/context.js";
import { iterTag, unitId } from "../experiment/ids.js";
import { problemKind, type Problem } from "../data/problems.js";
import { gradeProblem, type ProblemVerdict } from "../verify/dispatch.js";
import type { CodeVerdictKind, MathVerdictKind } from "../verify/types.js";
import type { UnitRow } from "../experiment/journal.js";
import type { SampleRecord } from "../rollout/generate-stage.js";
import { countableGroups, pairBuilder, type ExcludedCounts, type Pair, type SampleOutcome } from "./pairs.js";
import { invalidReasons, type ValidityCounts } from "./validity.js";

/** A code problem's record also carries the sandbox verdict (`code`: which test failed, stderr). */
export type GradeRecord = ProblemVerdict & { sample_id: string };

const GRADE_CONCURRENCY = 8;

/** Grades every rollout sample of the iteration that has no verdict yet. */
export async function gradeStage(ctx: RunContext, iteration: number): Promise<void> {
  const problems = new Map(ctx.problems.train.map((p) => [p.id, p]));
  const todo = ungraded(ctx, iteration); // lanes pull from one stream: memory does not grow with the stage
  const lane = async () => {
    for (let n = todo.next(); !n.done; n = todo.next()) {
      const s = n.value;
      const context = { promptOpensThink: s.result.prompt_opens_think === true };
      const verdict = await gradeProblem(ctx, problems.get(s.result.prompt_id)!, s.result.text, context);
      const id = unitId(iteration, "grade", s.result.prompt_id, s.result.sample);
      ctx.journal.record([{ id, stage: "grade", iteration, result: { ...verdict, sample_id: s.id } satisfies GradeRecord }]);
    }
  };
  await Promise.all(Array.from({ length: GRADE_CONCURRENCY }, lane));
}

/** Every rollout sample of the iteration with its verdict, in sample order. */
export function sampleOutcomes(ctx: RunContext, iteration: number): SampleOutcome[] {
  const problems = new Map<string, Problem>((ctx.problems?.train ?? []).map((p) => [p.id, p]));
  return [...ctx.journal.iterate<SampleRecord>("rollout", iteration)].map((s) => {
    const v = ctx.journal.get<GradeRecord>(unitId(iteration, "grade", s.result.prompt_id, s.result.sample));
    if (!v) throw new Error(`iteration ${iteration}: rollout sample ${s.id} has no grade; the grade stage must run before pairs`);
    const kind = problemKind(problems.get(s.result.prompt_id) ?? {});
    const invalid = invalidReasons(s.result.text, { task: kind, promptOpensThink: s.result.prompt_opens_think === true }, ctx.cfg.pairs.validity);
    return lazyText({
      id: s.id, promptId: s.result.prompt_id, verdict: v.verdict, finishReason: s.result.finish_reason, invalid,
      kind, ...(v.code ? { codeVerdict: v.code.verdict } : {}),
    }, s.result);
  });
}

/** Rollout samples of the iteration without a verdict, streamed in id order (bounded pages). */
function* ungraded(ctx: RunContext, iteration: number): Generator<UnitRow<SampleRecord>> {
  for (const s of ctx.journal.iterate<SampleRecord>("rollout", iteration)) {
    if (!ctx.journal.has(unitId(iteration, "grade", s.result.prompt_id, s.result.sample))) yield s;
  }
}

/** The outcome's text is read from the sample when used (pair dedup), so outcomes of a whole stage stay small. */
function lazyText(o: Omit<SampleOutcome, "text">, sample: SampleRecord): SampleOutcome {
  return Object.defineProperty(o, "text", { enumerable: true, get: () => sample.text }) as SampleOutcome;
}

/** Verdict counts of an iteration's rollout and the samples set aside, for metrics.jsonl and report.md. */
export interface GradingCounts extends ExcludedCounts {
  samples: number;
  correct: number;
  incorrect: number;
  no_answer: number;
  /** Countable samples that failed a validity filter, in all and by reason (pairs.validity). */
  validity: ValidityCounts;
  /** Samples and verdicts per problem kind: math by the checker's verdict, code by the sandbox's. */
  by_kind: KindCounts;
}

export interface KindCounts {
  math: { samples: number } & Record<MathVerdictKind, number>;
  code: { samples: number } & Record<CodeVerdictKind, number>;
}

const MATH_VERDICTS: MathVerdictKind[] = ["correct", "incorrect", "no_answer", "timeout", "error"];
const CODE_VERDICTS: CodeVerdictKind[] = ["AC", "WA", "TLE", "MLE", "RE", "OLE", "no_code", "error"];

export function kindCounts(outcomes: SampleOutcome[]): KindCounts {
  const math = outcomes.filter((o) => (o.kind ?? "math") === "math");
  const code = outcomes.filter((o) => o.kind === "code");
  const tally = <K extends string>(keys: K[], of: (k: K) => number) => Object.fromEntries(keys.map((k) => [k, of(k)])) as Record<K, number>;
  return {
    math: { samples: math.length, ...tally(MATH_VERDICTS, (k) => math.filter((o) => o.verdict === k).length) },
    code: { samples: code.length, ...tally(CODE_VERDICTS, (k) => code.filter((o) => o.codeVerdict === k).length) },
  };
}

export function gradingCounts(outcomes: SampleOutcome[]): GradingCounts {
  const { excluded, validity } = countableGroups(outcomes);
  const count = (k: MathVerdictKind) => outcomes.filter((o) => o.verdict === k).length;
  return {
    samples: outcomes.length, correct: count("correct"), incorrect: count("incorrect"), no_answer: count("no_answer"), ...excluded, validity,
    by_kind: kindCounts(outcomes),
  };
}

/** Builds (or reads back) the iteration's pairs: one unit, so a resumed run trains on the same pairs. */
export async function pairsStage(ctx: RunContext, iteration: number): Promise<Pair[]> {
  const id = `${iterTag(iteration)}/pairs`;
  const done = ctx.journal.get<{ pairs: Pair[] }>(id);
  if (done) return done.pairs;
  const build = await pairBuilder(ctx.cfg.pairs.builder, ctx.configDir);
  const outcomes = sampleOutcomes(ctx, iteration);
  const pairs = build(countableGroups(outcomes, ctx.cfg.pairs.validity.invalid).groups, ctx.cfg.pairs);
  const counts = gradingCounts(outcomes);
  ctx.journal.record([{ id, stage: "pairs", iteration, result: { pairs, counts } }]);
  ctx.metrics.write({ iteration, kind: "grading", ...counts, pairs: pairs.length });
  if (counts.excluded > 0) {
    ctx.log(
      `iteration ${iteration}: set aside ${counts.excluded} of ${counts.samples} samples ` +
        `(grader timeout ${counts.timeout}, grader error ${counts.error}, cut at max_tokens ${counts.truncated})`,
    );
  }
  const code = counts.by_kind.code;
  if (code.samples > 0) {
    const by = Object.entries(code).filter(([k, n]) => k !== "samples" && n > 0).map(([k, n]) => `${k} ${n}`);
    ctx.log(`iteration ${iteration}: ${code.samples} code samples judged in the sandbox (${by.join(", ")})`);
  }
  if (counts.validity.invalid > 0) {
    const by = Object.entries(counts.validity).filter(([k, n]) => k !== "invalid" && n > 0).map(([k, n]) => `${k} ${n}`);
    ctx.log(`iteration ${iteration}: ${counts.validity.invalid} invalid completions (${by.join(", ")}), ${ctx.cfg.pairs.validity.invalid === "drop" ? "dropped" : "never chosen"}`);
  }
  return pairs;
}
