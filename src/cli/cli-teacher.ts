// The model behind a standalone command's generation (`references`, `synth-tests`): worker processes, or
// managed vLLM servers on the model's HF directory (the same engine a run's roles use). Either way the command
// sees a Generator; its journal holds the samples, so a rerun resumes whichever engine wrote them.
import { join } from "node:path";
import { WorkerPool } from "../cluster/pool.js";
import { ConfigError } from "../config/errors.js";
import { ExperimentSchema } from "../config/schema.js";
import type { Journal } from "../experiment/journal.js";
import { engineGenerator, workerGenerator } from "../rollout/engine-generator.js";
import { roleVllmEngine } from "../rollout/from-config.js";
import type { VllmEngine } from "../rollout/vllm.js";
import type { Generator } from "../synthesis/teacher.js";

export const TEACHER_ENGINES = ["worker", "vllm"] as const;
export type TeacherEngine = (typeof TEACHER_ENGINES)[number];

export interface TeacherOptions {
  engine: TeacherEngine;
  /** A built-in model name or an HF directory. */
  source: string;
  seed: number;
  /** Worker processes (engine worker) or vLLM servers (engine vllm). */
  processes: number;
  /** The longest prompt + reply a vLLM server must hold. */
  maxModelLen: number;
  /** vLLM's weights dtype (the workers always compute in float32). */
  dtype: (typeof DTYPES)[number];
  runDir: string;
  journal: Journal;
  command: string;
}

export interface Teacher {
  gen: Generator;
  close(): Promise<void>;
}

const DTYPES = ["float32", "bfloat16", "auto"] as const;

/** --engine and --dtype, checked before anything starts. */
export function parseTeacherEngine(command: string, engine: string, dtype: string): { engine: TeacherEngine; dtype: (typeof DTYPES)[number] } {
  if (!(TEACHER_ENGINES as readonly string[]).includes(engine)) {
    throw new ConfigError(`${command}: --engine must be one of ${TEACHER_ENGINES.join(", ")} (got '${engine}')`);
  }
  if (!(DTYPES as readonly string[]).includes(dtype)) throw new ConfigError(`${command}: --dtype must be one of ${DTYPES.join(", ")} (got '${dtype}')`);
  return { engine: engine as TeacherEngine, dtype: dtype as (typeof DTYPES)[number] };
}

/** Starts the teacher; the caller closes it. */
export async function startTeacher(o: TeacherOptions): Promise<Teacher> {
  const log = (m: string) => process.stderr.write(`[${o.command}] ${m}\n`);
  if (o.engine === "worker") {
    const pool = new WorkerPool(o.processes, {
      modelSource: o.source, dtype: "float32", device: "auto", trainableLayers: 0, decodeWidth: 1, seed: o.seed, threads: 0,
      startupTimeoutS: 600, logDir: join(o.runDir, "logs"),
    }, 3, o.journal);
    try {
      await pool.start();
    } catch (e) {
      await pool.stop();
      throw e;
    }
    return { gen: workerGenerator(pool, o.source), close: () => pool.stop() };
  }
  // engine.vllm's defaults otherwise (the machine's cores split over the servers); eager, because a short
  // command would spend more on torch.compile's warm-up than it wins
  const cfg = ExperimentSchema.parse({
    name: o.command, seed: o.seed, model: { source: o.source },
    engine: { type: "vllm", max_concurrency: 16 * o.processes,
      vllm: { engines: o.processes, max_model_len: o.maxModelLen, dtype: o.dtype, enforce_eager: true, kv_cache_gib: 1 } },
  });
  const engine: VllmEngine = await roleVllmEngine(cfg, o.runDir, log, "teacher", o.source, { engine: "vllm" }, "chat");
  return { gen: engineGenerator(engine), close: () => engine.close() };
}

/**
 * The journaled samples depend on `want` (input, model, seeds, sampling, engine); a rerun with other settings
 * would mix two teachers' samples, so it is refused, naming what changed. The first run records them.
 */
export function guardJournalSettings(journal: Journal, runDir: string, command: string, what: string, want: Record<string, unknown>): void {
  const had = journal.getMeta(command);
  if (had === undefined) return journal.setMeta(command, JSON.stringify(want));
  const old = JSON.parse(had) as Record<string, unknown>;
  const changed = [...new Set([...Object.keys(want), ...Object.keys(old)])].filter((k) => old[k] !== want[k]);
  if (changed.length > 0) {
    throw new ConfigError(
      `${runDir} holds ${what} made with other settings (${changed.map((k) => `${k}: ${shown(old[k])} -> ${shown(want[k])}`).join(", ")}); ` +
        "use another --run-dir, or the same settings to resume",
    );
  }
}

/** A setting as the refusal shows it: one left out (a journal older than the option) is the default. */
const shown = (v: unknown): string => (v === undefined ? "(default)" : String(v));
