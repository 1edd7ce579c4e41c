// The self-play stages between rollout and update: grading and pair building.
import type { RunContext } from "../experiment/context.js";
import { iterTag, unitId } from "../experiment/ids.js";
import type { MathVerdict } from "../verify/types.js";
import type { SampleRecord } from "./generate-stage.js";
import { pairBuilder, type Pair, type PromptGroup } from "./pairs.js";

export type GradeRecord = MathVerdict & { sample_id: string };

const GRADE_CONCURRENCY = 8;

/** Grades every rollout sample of the iteration that has no verdict yet. */
export async function gradeStage(ctx: RunContext, iteration: number): Promise<void> {
  const answers = new Map(ctx.problems.train.map((p) => [p.id, p.answer]));
  const todo = ctx.journal
    .list<SampleRecord>("rollout", iteration)
    .filter((s) => !ctx.journal.has(unitId(iteration, "grade", s.result.prompt_id, s.result.sample)));
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < todo.length; i = next++) {
      const s = todo[i]!;
      const verdict = await ctx.grader.grade(s.result.text, answers.get(s.result.prompt_id)!);
      const id = unitId(iteration, "grade", s.result.prompt_id, s.result.sample);
      ctx.journal.record([{ id, stage: "grade", iteration, result: { ...verdict, sample_id: s.id } satisfies GradeRecord }]);
    }
  };
  await Promise.all(Array.from({ length: GRADE_CONCURRENCY }, lane));
}

/** Groups graded samples by prompt (in sample order). */
export function gradedGroups(ctx: RunContext, iteration: number): PromptGroup[] {
  const verdicts = new Map(ctx.journal.list<GradeRecord>("grade", iteration).map((g) => [g.result.sample_id, g.result]));
  const groups = new Map<string, PromptGroup>();
  for (const s of ctx.journal.list<SampleRecord>("rollout", iteration)) {
    const g = groups.get(s.result.prompt_id) ?? { promptId: s.result.prompt_id, samples: [] };
    g.samples.push({ id: s.id, text: s.result.text, passed: verdicts.get(s.id)?.verdict === "correct" });
    groups.set(s.result.prompt_id, g);
  }
  return [...groups.values()];
}

/** Builds (or reads back) the iteration's pairs: one unit, so a resumed run trains on the same pairs. */
export async function pairsStage(ctx: RunContext, iteration: number): Promise<Pair[]> {
  const id = `${iterTag(iteration)}/pairs`;
  const done = ctx.journal.get<{ pairs: Pair[] }>(id);
  if (done) return done.pairs;
  const build = await pairBuilder(ctx.cfg.pairs.builder, ctx.configDir);
  const pairs = build(gradedGroups(ctx, iteration), ctx.cfg.pairs);
  ctx.journal.record([{ id, stage: "pairs", iteration, result: { pairs } }]);
  return pairs;
}
