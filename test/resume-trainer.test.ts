// The trainer is SIGKILLed in the middle of a TrainStep, in iteration 1 (restart from the base model, a
// fresh optimizer) and in iteration 2 (restart from iteration 1's checkpoint with its optimizer state), then
// again while the redo of iteration 2 writes its checkpoint. A second run journals a resumable point after
// every step (train.resume_every_steps: 1) and is killed after a point, during a point's own save, and with
// its controller inside the last step, then rerun: it must take up each update at its newest point.
// Every run must finish with the weights and optimizer state an uninterrupted run ends with, bit for bit:
// both runs execute the same float operations in the same order on the same CPU (one torch thread), from
// the same starting state, so any difference means steps were lost, doubled or applied to the wrong weights.
// The kills land inside a step through the worker's fault hook (PROMPTCOT_FAULT_HOLD_TRAIN_STEP: the step
// holds after its backward passes, before the optimizer step, until killed), not by timing.
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { expectBitIdenticalCheckpoints, events, normalizedUnit, processesOfRun, sleep, waitFor, startRun, units, workerLog, workerPids, VALIDITY_OFF_FOR_RANDOM_MODEL, stepLine } from "./helpers/run-harness.js";

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
const NO_POINTS = ["--set", "train.resume_every_steps=0"]; // an update is one unit, redone from its start
const root = mkdtempSync(join(tmpdir(), "pcot-trainer-kill-"));
const refDir = join(root, "ref");

beforeAll(async () => {
  const r = await startRun([EXP, ...ARGS, ...NO_POINTS, "--run-dir", refDir]).done;
  expect(r.code, r.out).toBe(0);
}, 600_000);


const stepId = (iteration: number, step: number) => `it${String(iteration).padStart(3, "0")}/update/step-${step}`;
/** The fault hook's environment: these steps hold (once per run) until the test kills the process. */
const holding = (...steps: [number, number][]) => ({ PROMPTCOT_FAULT_HOLD_TRAIN_STEP: steps.map(([i, s]) => stepId(i, s)).join(",") });

/** Waits until step `step` of `iteration` holds inside the trainer (the fault hook), then SIGKILLs the workers
 *  (and the controller too with `controller`). */
async function killInsideStep(run: ReturnType<typeof startRun>, dir: string, iteration: number, step: number, controller = false): Promise<void> {
  const marker = join(dir, `fault-held-${stepId(iteration, step).replaceAll("/", "_")}`);
  let exited: string | undefined;
  void run.done.then((r) => (exited = r.out));
  const t0 = Date.now();
  while (!existsSync(marker)) {
    if (exited !== undefined) throw new Error(`the run ended before ${stepId(iteration, step)} held:\n${exited}`);
    if (Date.now() - t0 > 300_000) throw new Error(`timed out waiting for ${stepId(iteration, step)} to hold in the trainer`);
    await sleep(10);
  }
  if (controller) run.child.kill("SIGKILL");
  for (const pid of workerPids(dir)) process.kill(pid, "SIGKILL");
  // The killed process never finished the step: it was inside it, not between two steps.
  expect(workerLog(dir)).not.toContain(stepLine(iteration, step));
}

/** Kills the trainer while it writes checkpoint step-N (its temp dir exists, the rename has not happened);
 *  `under`: a resumable point's (checkpoints/points). */
async function killDuringSave(dir: string, step: number, under = "checkpoints"): Promise<void> {
  const ckpts = join(dir, under);
  const t0 = Date.now();
  while (!(existsSync(ckpts) && readdirSync(ckpts).some((f) => f.startsWith(`step-${step}.tmp-`)))) {
    if (Date.now() - t0 > 300_000) throw new Error(`timed out waiting for checkpoint step-${step} to be written`);
    await sleep(5);
  }
  for (const pid of workerPids(dir)) process.kill(pid, "SIGKILL");
}

/** Where each trainer restart of the run began, relative to its checkpoints directory. */
function restartedFrom(dir: string): string[] {
  const db = new Database(join(dir, "journal.sqlite"), { readonly: true });
  try {
    const rows = db.prepare("SELECT data FROM events WHERE kind = 'worker_restart' ORDER BY seq").all() as { data: string }[];
    return rows.map((r) => String((JSON.parse(r.data) as { checkpoint: string | null }).checkpoint).replace(`${join(dir, "checkpoints")}/`, ""));
  } finally {
    db.close();
  }
}

const lastCheckpoint = (dir: string) => {
  const updates = [...units(dir, "update").values()].map((j) => JSON.parse(j) as { checkpoint: string; global_step: number });
  return updates.sort((a, b) => a.global_step - b.global_step).at(-1)!.checkpoint;
};

/** The run ended with the uninterrupted run's weights, optimizer state, journal (units of `stage`s it alone
 *  has left out) and train metrics rows, each step's row once. */
function expectSameAsUninterrupted(dir: string, extraStages: string[] = []): void {
  expectBitIdenticalCheckpoints(lastCheckpoint(refDir), lastCheckpoint(dir));
  // Step metrics (a redo from the start has ln 2 as its first loss again), pairs, iteration 2's rollouts: all as uninterrupted.
  const want = units(refDir);
  const extra = new Set(extraStages.flatMap((st) => [...units(dir, st).keys()]));
  const got = new Map([...units(dir)].filter(([id]) => !extra.has(id)));
  expect([...got.keys()]).toEqual([...want.keys()]);
  for (const [id, result] of want) expect(normalizedUnit(got.get(id)!, dir), id).toEqual(normalizedUnit(result, refDir));
  // metrics.jsonl (and so TensorBoard) holds each step once, from the pass that counted: as uninterrupted.
  const trainRows = (d: string) => readFileSync(join(d, "metrics.jsonl"), "utf8").trim().split("\n")
    .map((l) => JSON.parse(l) as { kind: string }).filter((r) => r.kind === "train").map((r) => normalizedUnit(JSON.stringify(r), d));
  expect(trainRows(dir)).toEqual(trainRows(refDir));
  expect(trainRows(refDir).map((r) => (r as { step: number }).step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  expect(readdirSync(join(dir, "checkpoints")).sort()).toEqual(["step-4", "step-8"]); // no temp dirs, no points left
}

/** How often the worker log shows each step of `iteration` finished (restarts and reruns append to it). */
const finishedSteps = (dir: string, iteration: number) => [0, 1, 2, 3].map((b) => workerLog(dir).split(stepLine(iteration, b)).length - 1);

describe("trainer killed inside a TrainStep", () => {
  it("redoes the update from its starting checkpoint: same weights, optimizer state and journal as an uninterrupted run", async () => {
    const dir = join(root, "killed");
    const run = startRun([EXP, ...ARGS, ...NO_POINTS, "--run-dir", dir], holding([1, 1], [2, 2]));
    await killInsideStep(run, dir, 1, 1);
    await killInsideStep(run, dir, 2, 2);
    await killDuringSave(dir, 8); // the redo of iteration 2 ends in checkpoint step-8
    const r = await run.done;
    expect(r.code, r.out).toBe(0);
    expect(events(dir, "worker_restart")).toBe(3);
    expectSameAsUninterrupted(dir);
    expect(finishedSteps(dir, 1)).toEqual([2, 1, 1, 1]); // the whole update again
    expect(finishedSteps(dir, 2)).toEqual([3, 3, 2, 2]);
  }, 600_000);
});

describe("resumable points inside an update (train.resume_every_steps: 1)", () => {
  it("a restart takes the update up at its newest point: no journaled step redone, same weights, metrics once", async () => {
    const dir = join(root, "points");
    const argv = [EXP, ...ARGS, "--set", "train.resume_every_steps=1", "--run-dir", dir];
    const env = holding([1, 2], [2, 3]);
    const run = startRun(argv, env);
    await killInsideStep(run, dir, 1, 2); // after the point of step 2: the restarted trainer loads points/step-2
    await killDuringSave(dir, 6, "checkpoints/points"); // iteration 2's second point: the first (step 5) is still usable
    await killInsideStep(run, dir, 2, 3, true); // controller and trainer inside the last step, after the point of step 7
    expect((await run.done).code).not.toBe(0);
    await waitFor(() => processesOfRun(dir).length === 0, 15_000, "the orphaned processes to exit");
    const rerun = await startRun(argv, env).done;
    expect(rerun.code, rerun.out).toBe(0);
    expect(rerun.out).toContain(`continuing after step 3 of 4 from resumable point ${join(dir, "checkpoints", "points", "step-7")}`);

    expect(units(dir, "update_point").size).toBe(6); // after steps 1-3 of each 4-step update (none after the last)
    expect(restartedFrom(dir)).toEqual(["points/step-2", "points/step-5"]);
    // (a) Steps inside a journaled point were not redone: only the step being killed, or whose point was.
    expect(finishedSteps(dir, 1)).toEqual([1, 1, 1, 1]);
    expect(finishedSteps(dir, 2)).toEqual([1, 2, 1, 1]);
    // (b), (c): bit-identical weights and optimizer, the same journal apart from the points, each metrics row once.
    expectSameAsUninterrupted(dir, ["update_point"]);
  }, 600_000);
});
