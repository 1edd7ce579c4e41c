// `promptcot teacher-check`: measures an experiment's teacher (proposer.teacher: model, engine, prompt,
// sampling) on problems with known answers before a run trusts its votes: per vote setting (samples,
// agreement threshold) how many references it keeps and what share of them is right. Journaled in a run
// directory, so a rerun resumes and another threshold costs no generation.
import { dirname, join, resolve } from "node:path";
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import type { Command } from "commander";
import { restartPolicyOf, WorkerPool } from "../cluster/pool.js";
import { ConfigError } from "../config/errors.js";
import { loadExperiment } from "../config/load.js";
import { Journal } from "../experiment/journal.js";
import { engineGenerator, workerGenerator } from "../rollout/engine-generator.js";
import { localModelSource, roleEngineType, roleVllmEngine } from "../rollout/from-config.js";
import type { VllmEngine } from "../rollout/vllm.js";
import { referenceStage, SAMPLE_STAGE, type SampleRecord } from "../synthesis/references.js";
import { precisionTable, renderPrecisionTable } from "../synthesis/teacher-precision.js";
import { createMathGrader } from "../verify/math/grader.js";
import { readProblems } from "./synth-tests.js";

export interface TeacherCheckOptions {
  in?: string;
  samples?: number;
  thresholds: string;
  runDir?: string;
  json?: string;
  limit?: number;
  set: string[];
}

export async function teacherCheck(file: string, o: TeacherCheckOptions): Promise<number> {
  const { config: cfg } = loadExperiment(file, o.set);
  const t = cfg.proposer.teacher;
  const input = resolve(o.in ?? resolve(dirname(file), cfg.proposer.seeds_path ?? cfg.data.train_path ?? ""));
  if (!existsSync(input)) throw new ConfigError(`teacher-check: no problems at ${input}; pass --in FILE.jsonl (rows with 'prompt' and a known 'answer')`);
  const all = readProblems(input).filter((p) => typeof (p as { answer?: unknown }).answer === "string") as { id: string; prompt: string; answer: string }[];
  if (all.length === 0) throw new ConfigError(`teacher-check: ${input} has no rows with a string 'answer' to check the teacher against`);
  const problems = all.slice(0, o.limit ?? all.length);
  const samples = o.samples ?? Math.max(t.samples, 8);
  const thresholds = [...new Set([...o.thresholds.split(",").map(Number), t.min_agreement])].sort((a, b) => a - b);
  if (thresholds.some((x) => !(x >= 0 && x <= 1))) throw new ConfigError(`teacher-check: --thresholds must be shares in [0, 1] (got ${o.thresholds})`);
  const ks = [...new Set([1, 2, 4, 8, 16, 32].filter((k) => k < samples).concat(t.samples <= samples ? [t.samples] : [], samples))].sort((a, b) => a - b);
  const runDir = resolve(o.runDir ?? mkdtempSync(join(tmpdir(), "teacher-check-")));
  mkdirSync(join(runDir, "logs"), { recursive: true });
  const journal = new Journal(join(runDir, "journal.sqlite"));
  const source = t.source ?? cfg.model.source;
  if (/#/.test(source)) throw new ConfigError(`teacher-check: proposer.teacher.source '${source}' is a user Generator; check it with its own tools`);
  const modelSource = localModelSource(dirname(file), source);
  const log = (m: string) => process.stderr.write(`[teacher-check] ${m}\n`);
  let engine: VllmEngine | undefined;
  let pool: WorkerPool | undefined;
  const grader = createMathGrader();
  const t0 = Date.now();
  try {
    if (roleEngineType(cfg, t) === "vllm") engine = await roleVllmEngine(cfg, runDir, log, "teacher", modelSource, t, "chat");
    else {
      pool = new WorkerPool(1, { modelSource, dtype: cfg.model.dtype, device: cfg.model.device, trainableLayers: 0, decodeWidth: cfg.model.decode_width,
        seed: cfg.seed, threads: cfg.workers.threads, startupTimeoutS: cfg.workers.startup_timeout_s, logDir: join(runDir, "logs") }, restartPolicyOf(cfg.workers), journal);
      await pool.start();
    }
    const gen = engine ? engineGenerator(engine) : workerGenerator(pool!, source);
    await referenceStage(problems, gen, journal, {
      samples, minAgreement: t.min_agreement, seed: cfg.seed, sampling: t.sampling, fewShot: t.few_shot, ...(t.instruction ? { instruction: t.instruction } : {}),
    }, grader);
    const byProblem = new Map<string, (string | null)[]>();
    for (const s of journal.list<SampleRecord>(SAMPLE_STAGE, 0).map((u) => u.result)) (byProblem.get(s.problem_id) ?? byProblem.set(s.problem_id, []).get(s.problem_id)!)[s.sample] = s.answer;
    const known = problems.map((p) => ({ id: p.id, known: p.answer, answers: byProblem.get(p.id)!.slice(0, samples) }));
    const rows = await precisionTable(known, ks, thresholds, async (voted, ans) => (await grader.grade(`\\boxed{${voted}}`, ans)).verdict === "correct", grader);
    const answered = known.reduce((a, p) => a + p.answers.filter((x) => x !== null).length, 0);
    process.stdout.write(
      `teacher ${source} (${engine ? "vLLM" : "worker"}) on ${problems.length} known-answer problems from ${input}: ${samples} samples each ` +
        `(T ${t.sampling.temperature}, ≤${t.sampling.max_tokens} tokens), ${answered}/${problems.length * samples} samples answered; ` +
        `${((Date.now() - t0) / 1000).toFixed(0)} s; journal ${runDir}\n\n${renderPrecisionTable(rows)}\n`,
    );
    if (o.json) writeFileSync(o.json, JSON.stringify({ teacher: source, input, samples, rows }, null, 2));
    return 0;
  } finally {
    await Promise.all([engine?.close(), pool?.stop()]);
    await grader.close();
    journal.close();
  }
}

const num = (v: string) => Number(v);

export function registerTeacherCheck(program: Command, setCode: (c: number) => void): void {
  program
    .command("teacher-check")
    .description("measure the experiment's teacher vote on known answers: references kept and their precision per (samples, threshold)")
    .argument("<experiment>", "experiment YAML (its proposer.teacher settings are measured)")
    .option("--in <file>", "JSONL of problems with known 'answer' (default: the proposer's seeds)")
    .option("--samples <n>", "teacher samples per problem (default: max(proposer.teacher.samples, 8)); smaller k are read from the same samples", num)
    .option("--thresholds <list>", "agreement thresholds to tabulate", "0.5,0.75,1")
    .option("--limit <n>", "only the first N problems", num)
    .option("--run-dir <dir>", "journal directory (default: a new temp dir); rerun with it to resume")
    .option("--json <file>", "also write the table as JSON")
    .option("--set <key.path=value>", "override a config value (repeatable)", (v: string, acc: string[]) => [...acc, v], [] as string[])
    .action(async (file: string, o: TeacherCheckOptions) => {
      setCode(await teacherCheck(file, o));
    });
}
