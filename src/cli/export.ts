// `promptcot export RUN_DIR [--step N] --out DIR`: a run's checkpoint as a plain Hugging Face model
// directory (safetensors, config, tokenizer, generation config) that transformers' from_pretrained loads;
// the trainer's state (optimizer, RNG, fp32 masters, worker metadata) stays behind. The weights are the
// ones the run's workers served (for a bf16 run: bf16, the masters rounded). Only journaled updates are
// exported: a checkpoint directory without its journal row is an unfinished one.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { spawnSync } from "node:child_process";
import type { Command } from "commander";
import { pythonEnv, pythonPath, REPO_ROOT } from "../cluster/python-env.js";
import { ConfigError } from "../config/errors.js";
import { Journal } from "../experiment/journal.js";

/** The trainer's own files: resuming needs them, a model user does not. A sharded trainer's checkpoint adds
 * one RNG file per rank and its DCP shards (a directory, so never copied): its weights are streamed out of
 * those shards (promptcot_worker/dcp_export.py), not copied from the ranks' HF copy. */
const TRAINER_STATE = new Set(["optimizer.pt", "rng.pt", "master_fp32.pt", "worker_meta.json"]);
const isTrainerState = (f: string): boolean => TRAINER_STATE.has(f) || /^rng-\d+\.pt$/.test(f);

interface UpdateRow {
  checkpoint: string;
  global_step: number;
}

/** Every journaled update's checkpoint of the run, by global step. */
function journaledCheckpoints(runDir: string): UpdateRow[] {
  const file = join(runDir, "journal.sqlite");
  if (!existsSync(file)) throw new ConfigError(`${runDir} is not a run directory (no journal.sqlite)`);
  const journal = new Journal(file);
  try {
    const its = journal.countsByStage().filter((r) => r.stage === "update").map((r) => r.iteration);
    return its.flatMap((it) => journal.list<UpdateRow>("update", it).map((u) => u.result)).sort((a, b) => a.global_step - b.global_step);
  } finally {
    journal.close();
  }
}

export function pickCheckpoint(runDir: string, step?: number): UpdateRow {
  const all = journaledCheckpoints(runDir);
  const steps = all.map((u) => u.global_step).join(", ");
  if (all.length === 0) throw new ConfigError(`${runDir} has no journaled update yet: nothing to export`);
  const row = step === undefined ? all.at(-1)! : all.find((u) => u.global_step === step);
  if (!row) throw new ConfigError(`--step ${step}: no journaled update at that step in ${runDir} (steps: ${steps})`);
  const path = located(runDir, row.checkpoint);
  if (!existsSync(path)) {
    throw new ConfigError(`checkpoint step-${row.global_step} (${path}) is gone: removed by checkpoints.keep_last/keep_best? Present steps: ${all.filter((u) => existsSync(located(runDir, u.checkpoint))).map((u) => u.global_step).join(", ") || "none"}`);
  }
  return { ...row, checkpoint: path };
}

/** The journaled path, or the same step-N under this run directory when the run was moved or copied. */
function located(runDir: string, journaled: string): string {
  const moved = join(runDir, "checkpoints", basename(journaled));
  return existsSync(journaled) || !existsSync(moved) ? resolve(runDir, journaled) : moved;
}

/** Writes the model directory at `out` (temp dir + rename); refuses a non-empty `out`. Returns the files written. */
export function exportCheckpoint(src: string, out: string): string[] {
  if (existsSync(out) && (!statSync(out).isDirectory() || readdirSync(out).length > 0)) {
    throw new ConfigError(`--out ${out} exists and is not an empty directory; choose another or remove it`);
  }
  const files = readdirSync(src).filter((f) => !isTrainerState(f) && statSync(join(src, f)).isFile());
  if (!files.some((f) => f.endsWith(".safetensors")) || !files.includes("config.json")) {
    throw new ConfigError(`${src} is not a model checkpoint (needs *.safetensors and config.json)`);
  }
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    const sharded = existsSync(join(src, "dcp"));
    for (const f of files) if (!(sharded && isWeightFile(f))) copyFileSync(join(src, f), join(tmp, f));
    if (sharded) streamFromShards(src, tmp);
    if (!files.includes("generation_config.json")) writeGenerationConfig(tmp);
    if (existsSync(out)) rmdirSync(out); // empty (checked above); rename cannot replace a directory
    renameSync(tmp, out);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return readdirSync(out).sort();
}

const isWeightFile = (f: string): boolean => f.endsWith(".safetensors") || f === "model.safetensors.index.json";

/** The safetensors of a sharded checkpoint, read from its DCP shards one tensor at a time (never the whole
 *  model in this or the Python process) and cast to config.json's dtype. */
function streamFromShards(src: string, out: string): void {
  const r = spawnSync(pythonPath(), ["-m", "promptcot_worker.dcp_export", "--checkpoint", src, "--out", out],
    { cwd: REPO_ROOT, env: pythonEnv(), encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  if (r.status !== 0) {
    const why = r.error?.message ?? (r.stderr.trim().split("\n").slice(-5).join("\n") || `exit ${r.status ?? r.signal}`);
    throw new Error(`export: reading the DCP shards of ${src} failed: ${why}`);
  }
}

/** The generation config transformers would derive from config.json's special token ids. */
function writeGenerationConfig(dir: string): void {
  const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
  const gen: Record<string, unknown> = {};
  for (const k of ["bos_token_id", "eos_token_id", "pad_token_id"]) if (cfg[k] !== undefined && cfg[k] !== null) gen[k] = cfg[k];
  writeFileSync(join(dir, "generation_config.json"), `${JSON.stringify(gen, null, 2)}\n`);
}

export function registerExport(program: Command, setCode: (code: number) => void): void {
  program
    .command("export")
    .description("write a run's checkpoint as a plain Hugging Face model directory (safetensors, config, tokenizer, generation config)")
    .argument("<run-dir>", "the run directory (runs/<name>/<hash>)")
    .option("--step <n>", "global step of a journaled update (default: the newest)", (v) => {
      if (!/^\d+$/.test(v)) throw new ConfigError(`--step must be a whole number (got '${v}')`);
      return Number(v);
    })
    .requiredOption("--out <dir>", "output directory (must not exist, or be empty)")
    .action((runDir: string, o: { step?: number; out: string }) => {
      const row = pickCheckpoint(resolve(runDir), o.step);
      const files = exportCheckpoint(row.checkpoint, resolve(o.out));
      process.stdout.write(`exported step-${row.global_step} (${row.checkpoint}) to ${resolve(o.out)}: ${files.join(", ")}\n`);
      setCode(0);
    });
}
