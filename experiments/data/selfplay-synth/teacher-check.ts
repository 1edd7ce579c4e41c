// How many problems reach the teacher's agreement with an experiment's own teacher settings
// (proposer.teacher: source, samples, sampling, instruction, few_shot, min_agreement), on a JSONL of
// problems with known answers. Measures a teacher configuration without running the experiment.
//   npx tsx experiments/data/selfplay-synth/teacher-check.ts [experiments/selfplay-synth.yaml] \
//     [--in experiments/data/selfplay-synth/heldout.jsonl] [--limit N] [--set key=value ...]
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { WorkerPool } from "../../../src/cluster/pool.js";
import { loadExperiment } from "../../../src/config/load.js";
import { Journal } from "../../../src/experiment/journal.js";
import { SAMPLE_STAGE, referenceStage, type SampleRecord, type VoteRecord, voteUnit } from "../../../src/synthesis/references.js";
import { workerGenerator } from "../../../src/synthesis/teacher.js";
import { createMathGrader } from "../../../src/verify/math/grader.js";

const args = process.argv.slice(2);
const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const file = args[0] && !args[0].startsWith("--") ? args[0] : "experiments/selfplay-synth.yaml";
const sets = args.flatMap((a, i) => (args[i - 1] === "--set" ? [a] : []));
const { config: cfg } = loadExperiment(file, sets);
const input = opt("--in") ?? resolve(dirname(file), cfg.data.heldout_path ?? "");
const rows = readFileSync(input, "utf8").split("\n").filter((l) => l.trim()).map((l, i) => ({ id: `p${String(i).padStart(5, "0")}`, ...(JSON.parse(l) as { prompt: string; answer: string }) }));
const problems = rows.slice(0, Number(opt("--limit") ?? rows.length));
const t = cfg.proposer.teacher;
const source = t.source ?? cfg.model.source;
const dir = mkdtempSync(join(tmpdir(), "teacher-check-"));
const journal = new Journal(join(dir, "journal.sqlite"));
const pool = new WorkerPool(1, {
  modelSource: source, dtype: cfg.model.dtype, device: cfg.model.device, trainableLayers: 0, decodeWidth: cfg.model.decode_width,
  seed: cfg.seed, threads: cfg.workers.threads, startupTimeoutS: 600, logDir: join(dir, "logs"),
}, 3, journal);
const grader = createMathGrader();
const t0 = Date.now();
try {
  await pool.start();
  const r = await referenceStage(problems, workerGenerator(pool, source), journal, {
    samples: t.samples, minAgreement: t.min_agreement, seed: cfg.seed, sampling: t.sampling, fewShot: t.few_shot, ...(t.instruction ? { instruction: t.instruction } : {}),
  }, grader);
  const samples = journal.list<SampleRecord>(SAMPLE_STAGE, 0).map((s) => s.result);
  let right = 0;
  for (const p of problems) {
    const v = journal.get<VoteRecord>(voteUnit(p.id))!;
    if (v.kept && (await grader.grade(`\\boxed{${v.answer}}`, p.answer)).verdict === "correct") right++;
  }
  console.log(
    `${file} ${sets.join(" ")}\nteacher ${source}: ${problems.length} problems × ${t.samples} samples (≤${t.sampling.max_tokens} tokens, T ${t.sampling.temperature}), ` +
      `instruction ${JSON.stringify(t.instruction ?? "(PromptCoT's)")}, ${t.few_shot.length} worked turns\n` +
      `samples: ${samples.length}, cut at max_tokens ${samples.filter((s) => s.finish_reason === "length").length}, ` +
      `with \\boxed ${samples.filter((s) => s.text.includes("\\boxed")).length}, with an answer ${samples.filter((s) => s.answer !== null).length}\n` +
      `agreed (≥ ${t.min_agreement}): ${r.stats.kept}/${problems.length}; agreed and right: ${right}; ${((Date.now() - t0) / 1000).toFixed(0)} s; journal ${dir}`,
  );
} finally {
  await pool.stop();
  await grader.close();
  journal.close();
}
