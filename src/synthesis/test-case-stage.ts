// Test-case synthesis wired to workers: each round's prompts go through the Generate RPC, one sample
// per prompt with the round's seed (PromptCoT 2.0: one test case per round, several rounds).
import type { WorkerPool } from "../cluster/pool.js";
import type { Sampling } from "../config/schema.js";
import { plainSampling } from "../rollout/engine.js";
import { poolChunks } from "../rollout/worker-engine.js";
import type { GenerateFn, GeneratedText } from "./test-cases.js";
import { unitSeed } from "../experiment/ids.js";
import type { Journal } from "../experiment/journal.js";
import { extractCode } from "../verify/code/extract.js";
import type { CodeGrader, CodeTest } from "../verify/types.js";
import type { GenRequest, GenSample, Generator, TeacherSampling } from "./teacher.js";
import { buildRoundPrompts, mergeTestCases, parseTestCase, type ChatMessage, type CodeProblem, type ProblemWithTests } from "./test-cases.js";
import { type DropReason, type DroppedTest, validateTests } from "./test-validation.js";

const DEADLINE_MS = 60 * 60 * 1000;

/** A GenerateFn that spreads prompts over the pool's workers (restarting crashed ones, redoing their share). */
export function workerGenerate(pool: WorkerPool, sampling: Pick<Sampling, "temperature" | "top_p" | "max_tokens" | "prompts_per_request">): GenerateFn {
  return async (prompts) => {
    const out: GeneratedText[] = [];
    await poolChunks(pool, prompts, sampling.prompts_per_request, async (engine, chunk) => {
      const texts: GeneratedText[] = [];
      const wanted = chunk.map((p) => ({ id: p.id, messages: p.messages, seeds: [p.seed] }));
      for await (const r of engine.generate(wanted, plainSampling(sampling))) texts.push({ id: r.promptId, text: r.text });
      out.push(...texts);
    }, { timeoutMs: DEADLINE_MS });
    return out;
  };
}

// ---- journaled synthesis + validation -------------------------------------------------------------------
// Units: "tests/round" per (problem, round) — the teacher's reply and its parsed test; "tests/solution" per
// (problem, sample) — a teacher solution and its program; "tests/validate" per problem — the verdict matrix
// and what was kept or dropped and why. A rerun over the same journal asks the teacher only for missing
// units, and validates only problems without a "tests/validate" unit.

export const ROUND_STAGE = "tests/round";
export const SOLUTION_STAGE = "tests/solution";
export const VALIDATE_STAGE = "tests/validate";
export const roundUnit = (pid: string, r: number) => `${ROUND_STAGE}/${pid}/${String(r).padStart(3, "0")}`;
export const solutionUnit = (pid: string, i: number) => `${SOLUTION_STAGE}/${pid}/${String(i).padStart(3, "0")}`;
export const validateUnit = (pid: string) => `${VALIDATE_STAGE}/${pid}`;

export interface RoundRecord { problem_id: string; round: number; text: string; test: CodeTest | null }
export interface SolutionRecord { problem_id: string; sample: number; text: string; finish_reason: string; code: string | null }
export interface ValidateRecord {
  problem_id: string;
  candidates: number;
  duplicates: number;
  conflicts: number;
  solutions: number;
  kept: CodeTest[];
  dropped: DroppedTest[];
  verdicts: string[][];
}

export interface JournaledTestOptions {
  rounds: number;
  /** Teacher solutions per problem used to validate tests; 0 keeps every parsed test unchecked. */
  solutions: number;
  seed: number;
  sampling: TeacherSampling;
  minAgreement?: number;
  maxFieldChars?: number;
}

/** The teacher's prompt for a solution: a Python program in one fenced block. */
export function solutionMessages(problem: Pick<CodeProblem, "prompt">): ChatMessage[] {
  const user = `${problem.prompt.trim()}\n\nWrite a complete Python 3 program that reads standard input and writes standard output. Put the whole program in one \`\`\`python code block.`;
  return [{ role: "user", content: user }];
}

async function generateMissing(
  gen: Generator, journal: Journal, s: TeacherSampling, event: string,
  requests: GenRequest[], record: (sample: GenSample) => void,
): Promise<void> {
  const todo = requests.filter((r) => r.samples.length > 0);
  if (todo.length === 0) return;
  journal.event(event, { ids: todo.flatMap((r) => r.samples.map((x) => `${r.id}#${x.index}`)) });
  await gen.generate(todo, s, record);
}

async function roundsStage(problems: readonly CodeProblem[], gen: Generator, journal: Journal, o: JournaledTestOptions): Promise<void> {
  const prompts = Array.from({ length: o.rounds }, (_, r) => buildRoundPrompts(problems, r, o.seed)).flat();
  const requests = prompts.map((p) => {
    const [pid, r] = splitRoundId(p.id);
    return { id: p.id, messages: p.messages, samples: journal.has(roundUnit(pid, r)) ? [] : [{ index: 0, seed: p.seed }] };
  });
  await generateMissing(gen, journal, o.sampling, "tests_generate", requests, (g) => {
    const [pid, r] = splitRoundId(g.id);
    const result: RoundRecord = { problem_id: pid, round: r, text: g.text, test: parseTestCase(g.text, o.maxFieldChars) };
    journal.record([{ id: roundUnit(pid, r), stage: ROUND_STAGE, iteration: 0, result }]);
  });
}

function splitRoundId(id: string): [string, number] {
  const at = id.lastIndexOf("#tc");
  return [id.slice(0, at), Number(id.slice(at + 3))];
}

async function solutionsStage(problems: readonly CodeProblem[], gen: Generator, journal: Journal, o: JournaledTestOptions): Promise<void> {
  const requests = problems.map((p) => ({
    id: p.id,
    messages: solutionMessages(p),
    samples: Array.from({ length: o.solutions }, (_, i) => ({ index: i, seed: unitSeed(o.seed, "test-solutions", p.id, i) })).filter(
      (x) => !journal.has(solutionUnit(p.id, x.index)),
    ),
  }));
  await generateMissing(gen, journal, o.sampling, "tests_solve", requests, (g) => {
    const code = g.finishReason === "length" ? null : extractCode(g.text, { promptOpensThink: g.promptOpensThink });
    const result: SolutionRecord = { problem_id: g.id, sample: g.index, text: g.text, finish_reason: g.finishReason, code };
    journal.record([{ id: solutionUnit(g.id, g.index), stage: SOLUTION_STAGE, iteration: 0, result }]);
  });
}

async function validateOne(p: CodeProblem, journal: Journal, grader: CodeGrader, o: JournaledTestOptions): Promise<ValidateRecord> {
  const done = journal.get<ValidateRecord>(validateUnit(p.id));
  if (done) return done;
  const parsed = Array.from({ length: o.rounds }, (_, r) => journal.get<RoundRecord>(roundUnit(p.id, r))?.test ?? null);
  const merged = mergeTestCases(parsed.filter((t): t is CodeTest => t !== null));
  const programs = Array.from({ length: o.solutions }, (_, i) => journal.get<SolutionRecord>(solutionUnit(p.id, i))?.code ?? null)
    .filter((c): c is string => c !== null);
  const v = o.solutions === 0 || merged.tests.length === 0
    ? { kept: merged.tests, dropped: [], verdicts: [] }
    : await validateTests(grader, programs, merged.tests, { minAgreement: o.minAgreement });
  const result: ValidateRecord = {
    problem_id: p.id, candidates: parsed.filter(Boolean).length, duplicates: merged.duplicates, conflicts: merged.conflicts,
    solutions: programs.length, kept: v.kept, dropped: v.dropped, verdicts: v.verdicts,
  };
  journal.record([{ id: validateUnit(p.id), stage: VALIDATE_STAGE, iteration: 0, result }]);
  return result;
}

export interface JournaledTestStats {
  problems: number;
  generations: number;
  parsed: number;
  malformed: number;
  duplicates: number;
  conflicts: number;
  kept_tests: number;
  dropped: Record<DropReason, number>;
  kept_problems: number;
  dropped_problems: number;
}

/** Test synthesis, teacher solutions and validation, journaled; problems left with no test are dropped. */
export async function journaledTestSynthesis<P extends CodeProblem>(
  problems: readonly P[], gen: Generator, journal: Journal, grader: CodeGrader, o: JournaledTestOptions,
): Promise<{ problems: ProblemWithTests<P>[]; stats: JournaledTestStats }> {
  if (!Number.isInteger(o.rounds) || o.rounds < 1) throw new Error(`rounds must be a positive integer (got ${o.rounds})`);
  if (!Number.isInteger(o.solutions) || o.solutions < 0) throw new Error(`solutions must be a non-negative integer (got ${o.solutions})`);
  const ids = new Set<string>();
  for (const p of problems) {
    if (ids.has(p.id)) throw new Error(`duplicate problem id '${p.id}'`);
    ids.add(p.id);
  }
  await roundsStage(problems, gen, journal, o);
  if (o.solutions > 0) await solutionsStage(problems, gen, journal, o);
  const stats: JournaledTestStats = {
    problems: problems.length, generations: problems.length * o.rounds, parsed: 0, malformed: 0, duplicates: 0, conflicts: 0,
    kept_tests: 0, dropped: { disagreement: 0, no_passing_solution: 0, sandbox_error: 0 }, kept_problems: 0, dropped_problems: 0,
  };
  const out: ProblemWithTests<P>[] = [];
  for (const p of problems) {
    const v = await validateOne(p, journal, grader, o);
    stats.parsed += v.candidates;
    stats.malformed += o.rounds - v.candidates;
    stats.duplicates += v.duplicates;
    stats.conflicts += v.conflicts;
    stats.kept_tests += v.kept.length;
    for (const d of v.dropped) stats.dropped[d.reason]++;
    if (v.kept.length > 0) out.push({ ...p, test_cases: v.kept });
  }
  stats.kept_problems = out.length;
  stats.dropped_problems = problems.length - out.length;
  return { problems: out, stats };
}
