// The trainer is SIGKILLed in the middle of a TrainStep, in iteration 1 (restart from the base model, a
// fresh optimizer) and in iteration 2 (restart from iteration 1's checkpoint with its optimizer state), then
// again while the redo of iteration 2 writes its checkpoint.
// The run must finish with the weights and optimizer state an uninterrupted run ends with, bit for bit:
// both runs execute the same float operations in the same order on the same CPU (one torch thread), from
// the same starting state, so any difference means steps were lost, doubled or applied to the wrong weights.
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { compareCheckpoints, events, sleep, startRun, units, workerLog, workerPids, VALIDITY_OFF_FOR_RANDOM_MODEL, stepLine } from "./helpers/run-harness.js";

const EXP = "test/fixtures/tiny-selfplay.yaml";
// micro_batch_size 1 and 8 pairs per step make a step last long enough (~0.5 s here) to land a kill inside
// it; a large learning rate makes a lost or doubled step change the weights visibly, not only in the last bits.
// The stop string ends most samples early: samples cut at max_tokens never enter pairs.
const ARGS = [
  "--set", "pairs.builder=pairs-by-length.ts#shortVsLong", "--set", 'rollout.stop=["ing"]',
  ...VALIDITY_OFF_FOR_RANDOM_MODEL, "--set", "iterations=2", "--set", "eval_every=0",
  "--set", "train.batch_size=8", "--set", "train.micro_batch_size=1", "--set", "train.epochs=2",
  "--set", "train.learning_rate=0.001",
];
const root = mkdtempSync(join(tmpdir(), "pcot-trainer-kill-"));
const refDir = join(root, "ref");

beforeAll(async () => {
  const r = await startRun([EXP, ...ARGS, "--run-dir", refDir]).done;
  expect(r.code, r.out).toBe(0);
}, 600_000);


/** Kills the trainer while step `step` of `iteration` is running: after step-1's log line, partway into the next. */
async function killInsideStep(run: ReturnType<typeof startRun>, dir: string, iteration: number, step: number): Promise<void> {
  const before = stepLine(iteration, step - 1);
  let exited: string | undefined;
  void run.done.then((r) => (exited = r.out));
  const t0 = Date.now();
  let line: string | undefined;
  while (!(line = workerLog(dir).split("\n").find((l) => l.includes(before)))) {
    if (exited !== undefined) throw new Error(`the run ended before '${before}' appeared:\n${exited}`);
    if (Date.now() - t0 > 300_000) throw new Error(`timed out waiting for '${before}' in the worker log`);
    await sleep(10);
  }
  const seconds = Number(/'seconds': ([\d.]+)/.exec(line)![1]);
  await sleep(seconds * 400); // ~40% into the next step, which has the same size
  for (const pid of workerPids(dir)) process.kill(pid, "SIGKILL");
  // The killed process never finished the step: it was inside it, not between two steps.
  expect(workerLog(dir)).not.toContain(stepLine(iteration, step));
}

/** Kills the trainer while it writes checkpoint step-N (its temp dir exists, the rename has not happened). */
async function killDuringSave(dir: string, step: number): Promise<void> {
  const ckpts = join(dir, "checkpoints");
  const t0 = Date.now();
  while (!(existsSync(ckpts) && readdirSync(ckpts).some((f) => f.startsWith(`step-${step}.tmp-`)))) {
    if (Date.now() - t0 > 300_000) throw new Error(`timed out waiting for checkpoint step-${step} to be written`);
    await sleep(5);
  }
  for (const pid of workerPids(dir)) process.kill(pid, "SIGKILL");
}

const lastCheckpoint = (dir: string) => {
  const updates = [...units(dir, "update").values()].map((j) => JSON.parse(j) as { checkpoint: string; global_step: number });
  return updates.sort((a, b) => a.global_step - b.global_step).at(-1)!.checkpoint;
};

describe("trainer killed inside a TrainStep", () => {
  it("redoes the update from its starting checkpoint: same weights, optimizer state and journal as an uninterrupted run", async () => {
    const dir = join(root, "killed");
    const run = startRun([EXP, ...ARGS, "--run-dir", dir]);
    await killInsideStep(run, dir, 1, 1);
    await killInsideStep(run, dir, 2, 2);
    await killDuringSave(dir, 8); // the redo of iteration 2 ends in checkpoint step-8
    const r = await run.done;
    expect(r.code, r.out).toBe(0);
    expect(events(dir, "worker_restart")).toBe(3);
    expect(readdirSync(join(dir, "checkpoints")).sort()).toEqual(["step-4", "step-8"]); // no temp dirs left

    const cmp = compareCheckpoints(lastCheckpoint(refDir), lastCheckpoint(dir));
    for (const part of [cmp.weights, cmp.optimizer]) {
      expect(part.mismatch).toBeUndefined();
      expect(part.only_a).toEqual([]);
      expect(part.only_b).toEqual([]);
      expect(part.tensors).toBeGreaterThan(0);
      expect(part.max_abs_diff, part.worst_key).toBe(0);
    }
    // Step metrics (the redo's first loss is ln 2 again), pairs, iteration 2's rollouts: all as uninterrupted.
    const norm = (json: string, runDir: string) =>
      JSON.parse(json.replaceAll(runDir, "<run>"), (k, v) => (/seconds|time/.test(k) ? undefined : v)) as unknown;
    const want = units(refDir);
    const got = units(dir);
    expect([...got.keys()]).toEqual([...want.keys()]);
    for (const [id, result] of want) expect(norm(got.get(id)!, dir), id).toEqual(norm(result, refDir));
    // metrics.jsonl (and so TensorBoard) holds each step once, from the pass that counted: as uninterrupted.
    const trainRows = (d: string) => readFileSync(join(d, "metrics.jsonl"), "utf8").trim().split("\n")
      .map((l) => JSON.parse(l) as { kind: string; step: number; loss: number }).filter((r) => r.kind === "train").map((r) => [r.step, r.loss]);
    expect(trainRows(dir)).toEqual(trainRows(refDir));
    expect(trainRows(refDir).map(([s]) => s)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  }, 600_000);
});
