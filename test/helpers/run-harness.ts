// Drives the real CLI as a child process and watches its journal, for resume and fault tests.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { expect } from "vitest";
import { pythonPath } from "../../src/cluster/python-env.js";
import { inlineJson } from "../../src/experiment/payload.js";
import { SampleStore } from "../../src/experiment/sample-store.js";

/** `env`: variables set for this run only (a data plane, a worker-reads mode), on top of this process's. */
export function startRun(args: string[], env: Record<string, string> = {}): { child: ChildProcess; done: Promise<{ code: number | null; out: string }> } {
  const child = spawn("node", ["bin/promptcot.mjs", "run", ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CI: "true", ...env } });
  let out = "";
  child.stdout!.on("data", (b) => (out += b));
  child.stderr!.on("data", (b) => (out += b));
  const done = new Promise<{ code: number | null; out: string }>((r) => child.on("exit", (code) => r({ code, out })));
  return { child, done };
}

export function countUnits(runDir: string, stage: string): number {
  const file = join(runDir, "journal.sqlite");
  if (!existsSync(file)) return 0;
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      return (db.prepare("SELECT COUNT(*) AS n FROM units WHERE stage = ?").get(stage) as { n: number }).n;
    } finally {
      db.close();
    }
  } catch {
    return 0; // tables not created yet
  }
}

export function units(runDir: string, stage?: string): Map<string, string> {
  const db = new Database(join(runDir, "journal.sqlite"), { readonly: true });
  try {
    const rows = (stage
      ? db.prepare("SELECT id, result FROM units WHERE stage = ? ORDER BY id").all(stage)
      : db.prepare("SELECT id, result FROM units ORDER BY id").all()) as { id: string; result: string }[];
    // rows of sharded stages point at shard records (file names differ between runs): compare contents
    const store = new SampleStore(join(runDir, "shards"));
    try {
      return new Map(rows.map((r) => [r.id, inlineJson(store, r.result)]));
    } finally {
      store.close();
    }
  } finally {
    db.close();
  }
}

export function events(runDir: string, kind: string): number {
  const db = new Database(join(runDir, "journal.sqlite"), { readonly: true });
  try {
    return (db.prepare("SELECT COUNT(*) AS n FROM events WHERE kind = ?").get(kind) as { n: number }).n;
  } finally {
    db.close();
  }
}

export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Pids of live processes started for this run (workers carry PROMPTCOT_RUN_DIR in their environment). */
export function processesOfRun(runDir: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const env = readFileSync(`/proc/${d}/environ`, "latin1");
      const stat = readFileSync(`/proc/${d}/stat`, "latin1");
      if (env.includes(`PROMPTCOT_RUN_DIR=${runDir}\0`) && !/\) Z /.test(stat)) pids.push(Number(d));
    } catch {
      /* process gone or not ours to read */
    }
  }
  return pids;
}

/** Pids of the run's live gRPC workers (not its grader processes). */
export function workerPids(runDir: string): number[] {
  return processesOfRun(runDir).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "latin1").includes("promptcot_worker.server");
    } catch {
      return false;
    }
  });
}

/** The worker's log (restarts append to the same file); "" before it exists. */
export function workerLog(runDir: string, worker = "worker-0"): string {
  const file = join(runDir, "logs", `${worker}.log`);
  return existsSync(file) ? readFileSync(file, "utf8") : "";
}

export interface TensorComparison {
  only_a: string[];
  only_b: string[];
  tensors: number;
  max_abs_diff: number;
  worst_key: string;
  mismatch?: string;
}

/** Tensor-by-tensor comparison of two checkpoint dirs' model.safetensors and optimizer.pt. */
export function compareCheckpoints(a: string, b: string): { weights: TensorComparison; optimizer: TensorComparison } {
  const script = join(import.meta.dirname, "compare_checkpoints.py");
  return JSON.parse(execFileSync(pythonPath(), [script, a, b], { encoding: "utf8" })) as {
    weights: TensorComparison;
    optimizer: TensorComparison;
  };
}

/** Two checkpoints hold the same tensors, bit for bit: weights and optimizer state, none missing on either side. */
export function expectBitIdenticalCheckpoints(a: string, b: string): void {
  const cmp = compareCheckpoints(a, b);
  for (const part of [cmp.weights, cmp.optimizer]) {
    expect(part.mismatch).toBeUndefined();
    expect(part.only_a).toEqual([]);
    expect(part.only_b).toEqual([]);
    expect(part.tensors).toBeGreaterThan(0);
    expect(part.max_abs_diff, part.worst_key).toBe(0);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Random-weight models never box an answer and often emit CJK: the validity filters would leave nothing to train on. */
export const VALIDITY_OFF_FOR_RANDOM_MODEL = ["--set", "pairs.validity.require_boxed=false", "--set", "pairs.validity.forbid_cjk=false"];

/** The worker's log line of a finished TrainStep of the journaled update unit. */
export const stepLine = (iteration: number, step: number) => `train step it${String(iteration).padStart(3, "0")}/update/step-${step} `;

/** The newest `checkpoints/step-N` of a run. */
export function lastCheckpoint(runDir: string): string {
  const steps = readdirSync(join(runDir, "checkpoints")).filter((d) => d.startsWith("step-")).sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)));
  return join(runDir, "checkpoints", steps.at(-1)!);
}

/** A unit's result for comparison across runs: wall times dropped, the run's own directory as "<run>". */
export function normalizedUnit(json: string, runDir: string): unknown {
  return JSON.parse(json.replaceAll(runDir, "<run>"), (k, v) => (/seconds|time/.test(k) ? undefined : v));
}

/** The worker's log lines saying a score or train step read its token ids from shard records. */
export function shardReadLines(runDir: string): string[] {
  return workerLog(runDir).match(/^.*(score|train step): \d+ [a-z -]+ read from \d+ shard records$/gm) ?? [];
}

/** Managed engine processes (vLLM's API server, engine core, workers) of a run: they carry its log dir in their environment. */
export function enginesOf(runDir: string): number[] {
  const tag = `PROMPTCOT_ENGINE_LOGS=${join(runDir, "logs")}`;
  return readdirSync("/proc").filter((p) => /^\d+$/.test(p)).map(Number).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(tag);
    } catch {
      return false;
    }
  });
}
